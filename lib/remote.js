'use strict'

// Backends on a remote store (Redis, PostgreSQL): every call is a native request whose outcome
// arrives as an event (lib/events.js). Locking, queueing, retries and clean-up of aborted
// requests all happen in the Rust core.

const { native, pending, addPending, removePending } = require('./native.js')
const { forget } = require('./events.js')
const { schedule } = require('./sockets.js')
const { mintRemoteHandle } = require('./handle.js')
const { LockManager } = require('./manager.js')
const { DestroyedError, AbortError, remoteError, fromNative } = require('./errors.js')

class RemoteLock extends LockManager {
  _acquire(key, ttl, signal) {
    const req = native.remoteLock(this._handle, key, ttl)
    schedule()
    return this._request(req, { key, signal }, (e, resolve, reject) => {
      if (e.kind === 'locked') resolve(mintRemoteHandle(this, key, e))
      else reject(remoteError(e.error, key, this._retry, this.type))
    })
  }

  _acquireAll(keys, ttl, signal) {
    let req
    try {
      req = native.remoteLockAll(this._handle, keys, ttl)
    } catch (e) {
      throw fromNative(e)
    } finally {
      schedule()
    }
    return this._request(req, { key: keys, signal }, (e, resolve, reject) => {
      if (e.kind === 'locked') resolve(mintRemoteHandle(this, keys, e))
      else reject(remoteError(e.error, keys, this._retry, this.type))
    })
  }

  // Registers request `req`; `done(event, resolve, reject)` settles it. An aborted request
  // leaves `pending` at once: the native side gives back a lock it took.
  _request(req, w, done) {
    return new Promise((resolve, reject) => {
      w.manager = this
      w.settled = false
      w.resolve = resolve
      w.reject = reject
      w.done = done
      const signal = w.signal
      if (signal !== undefined) {
        w.onAbort = () => {
          removePending(req)
          native.remoteCancel(this._handle, req)
          schedule()
          signal.removeEventListener('abort', w.onAbort)
          reject(new AbortError(w.key, signal.reason))
        }
        signal.addEventListener('abort', w.onAbort)
      }
      addPending(req, w)
    })
  }

  // Called by lib/events.js with the request's outcome.
  _settled(w, e) {
    w.done(e, w.resolve, w.reject)
  }

  /** Releases this manager's locks and closes its connections. Idempotent. */
  destroy() {
    if (!this._markDestroyed()) return this._destroying
    for (const [id, w] of pending) {
      if (w.manager !== this) continue
      removePending(id)
      forget(w)
      // The native side stops these requests; settle them here.
      if (w.unlock) w.resolve()
      else w.reject(new DestroyedError())
    }
    const req = native.destroy(this._handle)
    schedule()
    this._destroying = req === 0 ? Promise.resolve() : this._request(req, {}, (e, resolve) => resolve())
    return this._destroying
  }
}

/** A lock shareable between processes: Redlock over one or N Redis masters. */
class RedisLock extends RemoteLock {
  constructor(options, info) {
    super(options, 'redis', info)
  }
}

/** A lock shareable between processes on one PostgreSQL database: rows of one table,
 * fencing numbers, waiters woken by LISTEN/NOTIFY. */
class PostgresLock extends RemoteLock {
  constructor(options, info) {
    super(options, 'postgres', info)
  }
}

module.exports = { RemoteLock, RedisLock, PostgresLock }
