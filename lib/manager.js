'use strict'

// What every backend shares: the fields @leverege/lock exposes, the native manager behind
// them, and the argument checks of lock() / lockNs(). A backend adds `_acquire(key, ttl,
// signal)`, `_acquireAll(keys, ttl, signal)` (a multi-resource lock) and `destroy()`.

const { EventEmitter } = require('node:events')
const { native, context } = require('./native.js')
const { addManagerSignals, removeManagerSignals } = require('./events.js')
const { ConfigError, DestroyedError, AbortError, typeError, fromNative } = require('./errors.js')
const { describe, checkKey, checkResource, checkTtl, checkSignal } = require('./check.js')
const { using } = require('./using.js')
const { schedule } = require('./sockets.js')

// A manager dropped without destroy() still gives its locks and waiters back.
const finalizer = new FinalizationRegistry((handle) => {
  native.destroy(handle)
  schedule()
})

function createNative(options, expected) {
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
    throw typeError(`options must be an object, got ${describe(options)}`, 'E_CONFIG')
  }
  try {
    return native.create(context, options === undefined ? {} : options, expected)
  } catch (e) {
    throw fromNative(e)
  } finally {
    // A new manager's tasks (its connections' writers) start at the next flush.
    schedule()
  }
}

// Events (an EventEmitter; none is needed, and an 'error' with no listener is dropped):
//   'lost'      { resource }            a held lock expired (or was taken) before its unlock
//   'extended'  { resource, value, expiration }
//   'error'     Error { code: 'E_NODE_FAILURE', node, kind }   a node (database) failed a call
//   'reconnect' { node }                it answers again after failing
class LockManager extends EventEmitter {
  // `info` is passed by create(), which has made the native manager already.
  constructor(options, type, info = createNative(options, type)) {
    super()
    /** The prefix lockNs() puts before keys. */
    this.namespace = info.namespace === null ? undefined : info.namespace
    this.type = info.type
    this._handle = info.handle
    this._ttl = info.defaultTtl
    this._retry = info.retry
    this._destroyed = false
    this._id = info.id ?? undefined
    // In memory: which table (lib/memory.js) and how long a contended lock() may wait.
    this._memory = { scope: info.scope ?? undefined, waitMs: info.waitMs ?? -1 }
    if (this._id !== undefined) addManagerSignals(this._id, this)
    finalizer.register(this, info.handle, this)
  }

  // A signal of the native manager (lib/events.js).
  _signal(name, key, error) {
    if (name === 'lost') this.emit('lost', { resource: key })
    else if (name === 'reconnect') this.emit('reconnect', { node: key })
    else if (name === 'error' && this.listenerCount('error') > 0) {
      const f = error?.failures?.[0] ?? { node: key, kind: 'io', message: 'failed' }
      const err = new Error(`${f.node}: ${f.message}`)
      err.code = 'E_NODE_FAILURE'
      err.node = f.node
      err.kind = f.kind
      this.emit('error', err)
    }
  }

  /** Locks `key` as given (an array: every key, all or nothing). Resolves a LockHandle. */
  lock(key, options) {
    try {
      checkResource(key)
      return this.#lock(key, options)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Locks `${namespace}:${key}` (of every key of an array). */
  lockNs(key, options) {
    try {
      checkResource(key)
      if (this.namespace === undefined) throw new ConfigError('lockNs() needs a namespace: pass { namespace } to create()')
      const ns = (k) => `${this.namespace}:${k}`
      return this.#lock(Array.isArray(key) ? key.map(ns) : ns(key), options)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Runs `fn(signal, handle)` holding `key`, extending it while `fn` runs, and releases it
   *  when `fn` settles; resolves `fn`'s result. See lib/using.js. */
  using(key, fn, options) {
    try {
      checkResource(key)
    } catch (e) {
      return Promise.reject(e)
    }
    return using(this, key, fn, options, false)
  }

  /** `using()` on `${namespace}:${key}`. */
  usingNs(key, fn, options) {
    try {
      checkResource(key)
    } catch (e) {
      return Promise.reject(e)
    }
    return using(this, key, fn, options, true)
  }

  /** Keys this manager holds or awaits (idle keys cost nothing). */
  get size() {
    return native.size(this._handle)
  }

  /** Whether `key` (not namespaced) is held right now: in memory by anyone in the table,
   *  remotely by this manager. */
  isLocked(key) {
    checkKey(key)
    return native.isLocked(this._handle, key)
  }

  #lock(key, options) {
    let ttl = this._ttl
    let signal
    if (typeof options === 'number') ttl = checkTtl(options)
    else if (options !== undefined && options !== null) {
      if (typeof options !== 'object') throw typeError(`ttl must be a number or { ttl, signal }, got ${describe(options)}`)
      let t
      try {
        t = options.ttl
        signal = options.signal
      } catch (e) {
        throw typeError(`lock() options cannot be read: ${e && e.message}`, 'E_INVALID_ARG', e)
      }
      if (t !== undefined) ttl = checkTtl(t)
      checkSignal(signal)
    }
    if (this._destroyed) throw new DestroyedError()
    if (signal !== undefined && signal.aborted) throw new AbortError(key, signal.reason)
    if (Array.isArray(key)) return this._acquireAll(Object.freeze([...key]), ttl, signal)
    return this._acquire(key, ttl, signal)
  }

  // Marks the manager destroyed and stops the finalizer; false if it was already.
  _markDestroyed() {
    if (this._destroyed) return false
    this._destroyed = true
    if (this._id !== undefined) removeManagerSignals(this._id)
    finalizer.unregister(this)
    return true
  }
}

module.exports = { LockManager, createNative }
