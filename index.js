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
// (Redis managers register as -1 - index.)
const finalizer = new FinalizationRegistry((index) => (index >= 0 ? native.destroyManager(index) : native.redisDestroy(-1 - index)))

function deliver(events) {
  for (let i = 0; i < events.length; i += 2) {
    const kind = events[i + 1]
    if (kind === 1) grant(events[i])
    else if (kind === 2) timeOut(events[i])
    else settle(events[i])
  }
}

// Redis lock requests aborted before they finished, by request id: nobody awaits them
// (so they keep nothing alive), but a lock their last attempt took must be given back.
const orphans = new Map()

// A Redis request finished: hand its outcome to whoever waits for it.
function settle(req) {
  const w = pending.get(req)
  if (w === undefined) {
    const m = orphans.get(req)
    if (m === undefined) return
    orphans.delete(req)
    const o = native.redisTake(m._index, req)
    if (o && o.kind === 'locked') native.redisUnlock(m._index, o.lockId)
    return
  }
  removePending(req)
  forget(w)
  w.done(native.redisTake(w.manager._index, req))
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
const OPTION_FIELDS = ['type', 'namespace', 'retry', 'delay', 'ttl', 'scope', 'connection', 'lockOptions', 'lockConfig']
const LOCK_OPTION_FIELDS = ['retryCount', 'retryDelay', 'retryJitter', 'driftFactor', 'nodeTimeout', 'connectTimeout']
const CONNECTION_FIELDS = ['host', 'port', 'username', 'password', 'db', 'tls']

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

function mapValues(o) {
  for (const k of Object.keys(o)) {
    const v = o[k]
    o[k] = v !== null && typeof v === 'object' && !Array.isArray(v) ? mapValues(v) : jsonValue(v)
  }
  return o
}

function pickOptions(options, nested) {
  const out = pick(options, OPTION_FIELDS)
  if (nested) delete out.lockConfig
  const lo = out.lockOptions
  if (lo !== null && typeof lo === 'object' && !Array.isArray(lo)) out.lockOptions = pick(lo, LOCK_OPTION_FIELDS)
  const lc = out.lockConfig
  if (lc !== null && typeof lc === 'object' && !Array.isArray(lc)) out.lockConfig = pickOptions(lc, true)
  const conn = out.connection
  const pickNode = (c) => (c !== null && typeof c === 'object' && !Array.isArray(c) ? pick(c, CONNECTION_FIELDS) : jsonValue(c))
  if (Array.isArray(conn)) out.connection = conn.map(pickNode)
  else if (conn !== undefined) out.connection = pickNode(conn)
  for (const k of Object.keys(out)) {
    const v = out[k]
    if (Array.isArray(v)) {
      out[k] = v.map((x) => (x !== null && typeof x === 'object' && !Array.isArray(x) ? mapValues(x) : jsonValue(x)))
    } else if (v !== null && typeof v === 'object') {
      mapValues(v)
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

// What both backends share: the fields @leverege/lock exposes and the argument checks
// of lock() / lockNs(). A backend adds `_acquire(key, ttl, signal)` and `destroy()`.
class LockManager {
  constructor(cfg) {
    /** The prefix lockNs() puts before keys. */
    this.namespace = cfg.namespace === null ? undefined : cfg.namespace
    this.type = cfg.type
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
    return this._acquire(key, ttl, signal)
  }
}

class InMemoryLock extends LockManager {
  // `cfg` is passed by create(), which has parsed the options already.
  constructor(options, cfg = parseOptions(options)) {
    if (cfg.type !== 'inMemory') throw new ConfigError(`type must be 'inMemory' for InMemoryLock, got '${cfg.type}'`)
    super(cfg)
    this._index = native.createManager(context, cfg.processScope, cfg.wait)
    finalizer.register(this, this._index, this)
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

  _acquire(key, ttl, signal) {
    args[0] = this._index
    args[1] = ttl
    const r = native.acquire(key)
    if (r > 0) return Promise.resolve(new LockHandle(this, key, r))
    if (r === 0) throw busyError(key, this._retry)
    return this.#enqueue(key, -r, signal)
  }

  #enqueue(key, id, signal) {
    return new Promise((resolve, reject) => {
      const w = { manager: this, key, resolve, reject, signal, onAbort: undefined, settled: false }
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

function unavailableError(resource, o) {
  const causes = o.causes.length > 0 ? `: ${o.causes.join('; ')}` : ''
  return new LockError(`Unable to reach a quorum of Redis nodes for the resource "${resource}" after ${o.attempts} attempts${causes}`, {
    code: 'E_UNAVAILABLE',
    attempts: o.attempts,
    resource,
    causes: o.causes,
  })
}

class RedisLockHandle extends LockHandle {
  #manager
  #lockId
  #value
  #expiration
  #held = true

  constructor(manager, resource, o) {
    super(manager, resource, 0)
    this.#manager = manager
    this.#lockId = o.lockId
    this.#value = o.value
    this.#expiration = o.expiration
    /** Attempts the acquisition took. */
    this.attempts = o.attempts
  }

  get value() {
    return this.#value
  }

  get expiration() {
    return this.#held ? this.#expiration : 0
  }

  unlock() {
    if (!this.#held) return RESOLVED
    this.#held = false
    const m = this.#manager
    return m._request(native.redisUnlock(m._index, this.#lockId), { kind: 'unlock' }, (o, resolve) => resolve())
  }

  extend(ttl) {
    const m = this.#manager
    try {
      ttl = ttl === undefined ? m._ttl : checkTtl(ttl)
    } catch (e) {
      return Promise.reject(e)
    }
    if (m._destroyed) return Promise.reject(new DestroyedError())
    const req = this.#held ? native.redisExtend(m._index, this.#lockId, ttl) : 0
    // 0: refused without I/O, the lock's validity has passed.
    if (req === 0) return Promise.reject(expiredError(this.resource))
    return m._request(req, { kind: 'extend' }, (o, resolve, reject) => {
      if (o.kind === 'extended') {
        this.#expiration = o.expiration
        resolve(this)
      } else if (o.kind === 'unavailable') reject(unavailableError(this.resource, o))
      else if (o.kind === 'destroyed') reject(new DestroyedError())
      else reject(expiredError(this.resource))
    })
  }
}

class RedisLock extends LockManager {
  // `cfg` is passed by create(), which has parsed the options already.
  constructor(options, cfg = parseOptions(options)) {
    if (cfg.type !== 'redis') throw new ConfigError(`type must be 'redis' for RedisLock, got '${cfg.type}'`)
    super(cfg)
    try {
      this._index = native.redisCreate(context, JSON.stringify(pickOptions(options, false)))
    } catch (e) {
      throw fromNative(e)
    }
    finalizer.register(this, -1 - this._index, this)
  }

  /** Keys this manager holds or awaits in this process (idle keys cost nothing). */
  get size() {
    return native.redisKeyCount(this._index)
  }

  _acquire(key, ttl, signal) {
    const req = native.redisLock(this._index, key, ttl)
    return this._request(req, { kind: 'lock', key, signal }, (o, resolve, reject) => {
      if (o.kind === 'locked') resolve(new RedisLockHandle(this, key, o))
      else if (o.kind === 'busy') reject(busyError(key, this._retry, o.attempts))
      else if (o.kind === 'unavailable') reject(unavailableError(key, o))
      else reject(new DestroyedError())
    })
  }

  // Registers request `req`; `done(outcome, resolve, reject)` settles it. An aborted
  // request leaves `pending` at once for `orphans` (see settle()), so `done` runs only
  // for requests somebody still awaits.
  _request(req, w, done) {
    return new Promise((resolve, reject) => {
      w.manager = this
      w.reject = reject
      w.done = (o) => {
        if (o !== null && o !== undefined) done(o, resolve, reject)
      }
      const signal = w.signal
      if (signal !== undefined) {
        w.onAbort = () => {
          removePending(req)
          orphans.set(req, this)
          native.redisCancel(this._index, req)
          signal.removeEventListener('abort', w.onAbort)
          reject(new AbortError(w.key, signal.reason))
        }
        signal.addEventListener('abort', w.onAbort)
      }
      addPending(req, w)
    })
  }

  /** Releases this manager's locks and closes its connections. Idempotent. */
  destroy() {
    if (this._destroyed) return this._destroying
    this._destroyed = true
    finalizer.unregister(this)
    for (const [id, w] of pending) {
      if (w.manager !== this) continue
      removePending(id)
      forget(w)
      // The native side stops these requests; settle them here.
      if (w.kind === 'unlock') w.done({ kind: 'done' })
      else w.reject(new DestroyedError())
    }
    const req = native.redisDestroy(this._index)
    this._destroying = req === 0 ? RESOLVED : this._request(req, { kind: 'destroy' }, (o, resolve) => resolve())
    return this._destroying
  }
}

/** Creates a lock manager from @leverege/lock-style options. Synchronous. */
function create(options) {
  const cfg = parseOptions(options)
  switch (cfg.type) {
    case 'inMemory':
      return new InMemoryLock(options, cfg)
    case 'redis':
      return new RedisLock(options, cfg)
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
  RedisLock,
  LockHandle,
  LockError,
  ConfigError,
  DestroyedError,
  AbortError,
}
module.exports.default = module.exports
