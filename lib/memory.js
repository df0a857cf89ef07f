'use strict'

// The in-memory backend: an uncontended lock and an unlock are one synchronous native call
// each; a contended lock() waits in the native FIFO queue of its key.

const { native, args, pending, addPending, removePending } = require('./native.js')
const { forget } = require('./events.js')
const { mintLockHandle, RESOLVED } = require('./handle.js')
const { LockManager } = require('./manager.js')
const { DestroyedError, AbortError, busyError } = require('./errors.js')
const { lockAll } = require('./multi.js')

class InMemoryLock extends LockManager {
  constructor(options, info) {
    super(options, 'inMemory', info)
  }

  _acquire(key, ttl, signal) {
    args[0] = this._handle
    args[1] = ttl
    const r = native.acquire(key)
    if (r > 0) return Promise.resolve(mintLockHandle(this, key, r))
    if (r === 0) throw busyError(key, this._retry)
    return this.#enqueue(key, -r, signal)
  }

  _acquireAll(keys, ttl, signal) {
    return lockAll(this, keys, ttl, signal)
  }

  #enqueue(key, id, signal) {
    return new Promise((resolve, reject) => {
      const w = { manager: this, key, resolve, reject, signal, onAbort: undefined, settled: false }
      if (signal !== undefined) {
        w.onAbort = () => {
          // Leave the queue now; if the grant is already on its way, grant() returns it.
          if (native.cancel(this._handle, id)) removePending(id)
          else w.settled = true
          signal.removeEventListener('abort', w.onAbort)
          reject(new AbortError(key, signal.reason))
        }
        signal.addEventListener('abort', w.onAbort)
      }
      addPending(id, w)
    })
  }

  // Called by lib/events.js: the waiter holds the key now, or its budget ran out.
  _granted(w, id) {
    w.resolve(mintLockHandle(this, w.key, id))
  }

  _settled(w) {
    w.reject(busyError(w.key, this._retry))
  }

  /** Releases every lock and queued lock() of this manager. Idempotent. */
  destroy() {
    if (this._markDestroyed()) {
      native.destroy(this._handle)
      for (const [id, w] of pending) {
        if (w.manager !== this) continue
        removePending(id)
        forget(w)
        if (!w.settled) w.reject(new DestroyedError())
      }
    }
    return RESOLVED
  }
}

module.exports = { InMemoryLock }
