'use strict'

// The JS face of oxlock: it checks argument types, turns native results into promises,
// handles and errors, and keeps the promise of every queued lock() call of this thread.
// Lock state, queues, expiry and deadlines live in the Rust core (src/).

const native = require('./binding.js')
const {
  LockError,
  ConfigError,
  DestroyedError,
  AbortError,
  typeError,
  rangeError,
  busyError,
  expiredError,
  fromNative,
} = require('./errors.js')

const MAX_MS = 2147483647
const RESOLVED = Promise.resolve()
const asyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose')

// Queued lock() calls of this thread, by waiter id (ids are process-unique).
const pending = new Map()

// A queued lock() keeps the process alive, as any pending timer would: every lock has a
// ttl, so the wait always ends. Idle, holding locks, or after destroy(), nothing is ref'd.
// The interval never fires in practice; it only carries the ref.
const keepAlive = setInterval(() => {}, MAX_MS)
keepAlive.unref()

function addPending(id, w) {
  pending.set(id, w)
  if (pending.size === 1) keepAlive.ref()
}

function removePending(id) {
  pending.delete(id)
  if (pending.size === 0) keepAlive.unref()
}

// Numbers for the hot native calls go through this array (see src/bindings.rs): filling
// three slots is far cheaper than converting three arguments. Decisions taken off this
// thread (timer thread, other workers) arrive through drain(); the wake-up function is
// weak, so it never keeps the process alive.
const { args, context } = native.init(new Float64Array(3), () => deliver(native.drain(context)))

// A manager dropped without destroy() still gives its locks and waiters back.
const finalizer = new FinalizationRegistry((index) => native.destroyManager(index))

function deliver(events) {
  for (let i = 0; i < events.length; i += 2) {
    if (events[i + 1] === 1) grant(events[i])
    else timeOut(events[i])
  }
}

function grant(id) {
  const w = pending.get(id)
  if (w === undefined) return
  removePending(id)
  forget(w)
  if (w.settled) {
    // Aborted while the grant was on its way: give the key straight back.
    args[0] = w.manager._index
    args[1] = id
    const next = native.release()
    if (next !== 0) grant(next)
    return
  }
  w.resolve(new LockHandle(w.manager, w.key, id))
}

function timeOut(id) {
  const w = pending.get(id)
  if (w === undefined) return
  removePending(id)
  forget(w)
  if (!w.settled) w.reject(busyError(w.key, w.manager._retry))
}

function forget(w) {
  if (w.signal !== undefined) w.signal.removeEventListener('abort', w.onAbort)
}

function checkKey(key) {
  if (typeof key !== 'string') throw typeError(`key must be a string, got ${describe(key)}`)
  if (key.length === 0) throw rangeError('key must not be empty')
}

function checkTtl(ttl, what = 'ttl') {
  if (typeof ttl !== 'number') throw typeError(`${what} must be a number of milliseconds, got ${describe(ttl)}`)
  if (!(ttl > 0 && ttl <= MAX_MS)) throw rangeError(`${what} must be > 0 and <= ${MAX_MS} ms, got ${ttl}`)
  return Math.ceil(ttl)
}

function checkSignal(signal) {
  if (signal === undefined) return
  if (signal === null || typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw typeError(`signal must be an AbortSignal, got ${describe(signal)}`)
  }
}

function describe(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${v}`
  return typeof v
}

// The option fields the native parser knows, per level. Reading exactly these (plain
// property reads, so getters and inherited properties count) keeps unrelated fields such
// as a logger with circular references out of the JSON handed to the parser.
const OPTION_FIELDS = ['type', 'namespace', 'retry', 'delay', 'ttl', 'scope', 'lockOptions', 'lockConfig']
const LOCK_OPTION_FIELDS = ['retryCount', 'retryDelay', 'retryJitter', 'driftFactor']

function pick(obj, fields) {
  const out = {}
  for (const f of fields) {
    const v = obj[f]
    if (v !== undefined) out[f] = v
  }
  return out
}

// JSON.stringify would turn NaN and Infinity into null and drop bigints and functions:
// mark them so the native parser can say precisely what is wrong with which field.
function jsonValue(v) {
  if (typeof v === 'number') return Number.isFinite(v) ? v : { $nonFinite: String(v) }
  if (typeof v === 'bigint' || typeof v === 'function' || typeof v === 'symbol') return { $jsType: typeof v }
  return v
}

function pickOptions(options, nested) {
  const out = pick(options, OPTION_FIELDS)
  if (nested) delete out.lockConfig
  const lo = out.lockOptions
  if (lo !== null && typeof lo === 'object' && !Array.isArray(lo)) out.lockOptions = pick(lo, LOCK_OPTION_FIELDS)
  const lc = out.lockConfig
  if (lc !== null && typeof lc === 'object' && !Array.isArray(lc)) out.lockConfig = pickOptions(lc, true)
  for (const k of Object.keys(out)) {
    const v = out[k]
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const kk of Object.keys(v)) v[kk] = jsonValue(v[kk])
    } else {
      out[k] = jsonValue(v)
    }
  }
  return out
}

function parseOptions(options) {
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
    throw typeError(`options must be an object, got ${describe(options)}`, 'E_CONFIG')
  }
  let json
  try {
    json = JSON.stringify(options === undefined ? {} : pickOptions(options, false))
  } catch (e) {
    throw typeError(`options cannot be read: ${e.message}`, 'E_CONFIG')
  }
  try {
    return native.parseConfig(json)
  } catch (e) {
    throw fromNative(e)
  }
}

class LockHandle {
  #manager
  #id
  #held = true
  #value

  constructor(manager, resource, id) {
    this.#manager = manager
    this.#id = id
    /** The locked key, exactly as stored. */
    this.resource = resource
  }

  /** When the lock expires unless extended, in epoch ms; 0 once released or taken over. */
  get expiration() {
    return this.#held ? native.expiration(this.#manager._index, this.#id) : 0
  }

  /** The lock's unguessable token (32 hex chars). */
  get value() {
    if (this.#value === undefined) this.#value = native.token(this.#id)
    return this.#value
  }

  unlock() {
    if (this.#held) {
      this.#held = false
      args[0] = this.#manager._index
      args[1] = this.#id
      const next = native.release()
      if (next !== 0) grant(next)
    }
    return RESOLVED
  }

  extend(ttl) {
    const m = this.#manager
    try {
      ttl = ttl === undefined ? m._ttl : checkTtl(ttl)
    } catch (e) {
      return Promise.reject(e)
    }
    if (m._destroyed) return Promise.reject(new DestroyedError())
    args[0] = m._index
    args[1] = this.#id
    args[2] = ttl
    if (this.#held && native.extend()) {
      return Promise.resolve(this)
    }
    return Promise.reject(expiredError(this.resource))
  }

  [asyncDispose]() {
    return this.unlock()
  }
}

class InMemoryLock {
  // `cfg` is passed by create(), which has parsed the options already.
  constructor(options, cfg = parseOptions(options)) {
    if (cfg.type !== 'inMemory') throw new ConfigError(`type must be 'inMemory' for InMemoryLock, got '${cfg.type}'`)
    /** The prefix lockNs() puts before keys. */
    this.namespace = cfg.namespace === null ? undefined : cfg.namespace
    this.type = cfg.type
    this._index = native.createManager(context, cfg.processScope, cfg.wait)
    finalizer.register(this, this._index, this)
    this._ttl = cfg.defaultTtl
    this._retry = cfg.retry
    this._destroyed = false
  }

  /** Locks `key` as given. Resolves a LockHandle. */
  lock(key, options) {
    try {
      checkKey(key)
      return this.#lock(key, options)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Locks `${namespace}:${key}`. */
  lockNs(key, options) {
    try {
      checkKey(key)
      if (this.namespace === undefined) throw new ConfigError('lockNs() needs a namespace: pass { namespace } to create()')
      return this.#lock(`${this.namespace}:${key}`, options)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** How many keys this manager's table holds state for (held or awaited). */
  get size() {
    return native.keyCount(this._index)
  }

  /** Whether `key` is held right now (not namespaced). */
  isLocked(key) {
    checkKey(key)
    return native.isLocked(this._index, key)
  }

  #lock(key, options) {
    let ttl = this._ttl
    let signal
    if (typeof options === 'number') ttl = checkTtl(options)
    else if (options !== undefined && options !== null) {
      if (typeof options !== 'object') throw typeError(`ttl must be a number or { ttl, signal }, got ${describe(options)}`)
      if (options.ttl !== undefined) ttl = checkTtl(options.ttl)
      signal = options.signal
      checkSignal(signal)
    }
    if (this._destroyed) throw new DestroyedError()
    if (signal !== undefined && signal.aborted) throw new AbortError(key, signal.reason)

    args[0] = this._index
    args[1] = ttl
    const r = native.acquire(key)
    if (r > 0) return Promise.resolve(new LockHandle(this, key, r))
    if (r === 0) throw busyError(key, this._retry)
    return this.#enqueue(key, ttl, -r, signal)
  }

  #enqueue(key, ttl, id, signal) {
    return new Promise((resolve, reject) => {
      const w = { manager: this, key, ttl, resolve, reject, signal, onAbort: undefined, settled: false }
      if (signal !== undefined) {
        w.onAbort = () => {
          // Leave the queue now; if the grant is already on its way, grant() returns it.
          if (native.cancel(this._index, id)) removePending(id)
          else w.settled = true
          signal.removeEventListener('abort', w.onAbort)
          reject(new AbortError(key, signal.reason))
        }
        signal.addEventListener('abort', w.onAbort)
      }
      addPending(id, w)
    })
  }

  /** Releases every lock and queued lock() of this manager. Idempotent. */
  destroy() {
    if (!this._destroyed) {
      this._destroyed = true
      finalizer.unregister(this)
      native.destroyManager(this._index)
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

/** Creates a lock manager from @leverege/lock-style options. Synchronous. */
function create(options) {
  const cfg = parseOptions(options)
  switch (cfg.type) {
    case 'inMemory':
      return new InMemoryLock(options, cfg)
    default:
      throw new ConfigError(`type '${cfg.type}' is not supported`)
  }
}

/** A promise version of setTimeout (as @leverege/lock exports it). */
function wait(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

module.exports = {
  create,
  wait,
  InMemoryLock,
  LockHandle,
  LockError,
  ConfigError,
  DestroyedError,
  AbortError,
}
module.exports.default = module.exports
