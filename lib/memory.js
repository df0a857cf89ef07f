'use strict'

// The in-memory backend. `scope: 'instance'` (the default): the manager's own table, in JS
// (lib/table.js), since only this thread uses it. `scope: 'process'`: the native table that
// every manager and worker thread shares; an uncontended lock and an unlock are one
// synchronous native call each, and a contended lock() waits in the native FIFO of its key.

const { native, args, pending, addPending, removePending } = require('./native.js')
const { forget, grant } = require('./events.js')
const { mintLockHandle, RESOLVED } = require('./handle.js')
const { LockManager } = require('./manager.js')
const { LockTable } = require('./table.js')
const { Waiter, deferred, settle } = require('./waiter.js')
const { DestroyedError, AbortError, busyError } = require('./errors.js')
const { lockAll } = require('./multi.js')
const { checkKey } = require('./check.js')

/** The native table behind the calls a LockHandle makes (`scope: 'process'`). */
class NativeTable {
  constructor(handle) {
    this.handle = handle
  }

  release(key, id) {
    args[0] = this.handle
    args[1] = id
    const next = native.release()
    if (next !== 0) grant(next)
  }

  extend(key, id, ttl) {
    args[0] = this.handle
    args[1] = id
    args[2] = ttl
    return native.extend()
  }

  expiration(key, id) {
    return native.expiration(this.handle, id)
  }

  token(id) {
    return native.token(id)
  }
}

class InMemoryLock extends LockManager {
  constructor(options, info) {
    super(options, 'inMemory', info)
    const { scope, waitMs } = this._memory
    this._table = scope === 'process' ? new NativeTable(this._handle) : new LockTable(waitMs)
    this._jsTable = this._table instanceof LockTable
    this._pinned = new Set() // using() calls holding a pinned lock: destroy() aborts them
  }

  get size() {
    return this._jsTable ? this._table.size() : super.size
  }

  isLocked(key) {
    if (!this._jsTable) return super.isLocked(key)
    checkKey(key)
    return this._table.isLocked(key)
  }

  _acquire(key, ttl, signal) {
    const t = this._table
    if (this._jsTable) {
      const id = t.take(key, ttl)
      if (id > 0) return Promise.resolve(mintLockHandle(this, key, id))
      if (id === 0) throw busyError(key, this._retry)
      return this.#wait(t, key, ttl, signal)
    }
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

  // A waiter in the JS table.
  #wait(t, key, ttl, signal) {
    const p = deferred()
    const w = new Waiter(this, key, ttl, settle.resolve, settle.reject, signal)
    if (signal !== undefined) {
      w.onAbort = () => {
        if (t.cancel(w)) w.reject(new AbortError(key, signal.reason))
      }
      signal.addEventListener('abort', w.onAbort, { once: true })
    }
    t.enqueue(key, w)
    return p
  }

  // A waiter in the native table.
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
      for (const lose of this._pinned) lose()
      this._pinned.clear()
      native.destroy(this._handle)
      if (this._jsTable) this._table.destroy((w) => w.destroyed())
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
