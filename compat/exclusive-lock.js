'use strict'

// require('oxlock/exclusive-lock'): the ExclusiveLock class of exclusive-lock 2.0.0
// (@logdna/exclusive-lock), on oxlock's Rust core. Same key (`<prefix>:<name>`), contents,
// options, validation errors, fields and events. Fixed, compatibly: the refresh (run in
// Rust) is compare-and-PEXPIRE on our contents and a refresh that finds the lock gone
// emits `error` (code ELOCKLOST) then `released`; release is compare-and-delete; a missing
// `error` listener never skips the auto-release or crashes the process. The
// `cache_connection` client's settings are read; oxlock opens its own connection.

const { Face } = require('../lib/face.js')
const { connectionOf } = require('../lib/connection.js')
const { native } = require('../lib/native.js')

const noop = () => {}
const NO_LOG = { info: noop, warn: noop, error: noop, debug: noop, trace: noop, fatal: noop, child: () => NO_LOG }
const slug = (s) => String(s).replace(/[\s\W]+/g, '-')

function einval(Class, message, extra) {
  const e = new Class(message)
  e.code = 'EINVAL'
  Object.assign(e, extra)
  return e
}

function validate(opts, log) {
  const errors = []
  const str = (f) => opts[f] !== undefined && typeof opts[f] !== 'string' && errors.push({ instancePath: `/${f}`, message: 'must be string' })
  const num = (f) => opts[f] !== undefined && typeof opts[f] !== 'number' && errors.push({ instancePath: `/${f}`, message: 'must be number' })
  if (opts.name === undefined) errors.push({ instancePath: '', message: "must have required property 'name'" })
  else if (typeof opts.name !== 'string') errors.push({ instancePath: '/name', message: 'must be string' })
  else if (opts.name.length < 1) errors.push({ instancePath: '/name', message: 'must NOT have fewer than 1 characters' })
  if (errors.length === 0 && opts.cache_connection === undefined) errors.push({ instancePath: '', message: "must have required property 'cache_connection'" })
  else if (errors.length === 0 && typeof opts.cache_connection !== 'string' && (opts.cache_connection === null || typeof opts.cache_connection !== 'object')) {
    errors.push({ instancePath: '/cache_connection', message: 'must be object' })
  }
  if (errors.length === 0 && opts.log !== undefined && (opts.log === null || typeof opts.log !== 'object')) errors.push({ instancePath: '/log', message: 'must be object' })
  if (errors.length === 0) num('lock_ttl_ms')
  if (errors.length === 0) num('lock_refresh_ms')
  if (errors.length === 0) str('lock_contents')
  if (errors.length === 0) str('key_prefix')
  if (errors.length === 0 && opts.lock_ttl_ms !== undefined && opts.lock_refresh_ms === undefined) {
    errors.push({ instancePath: '', message: 'must have property lock_refresh_ms when property lock_ttl_ms is present' })
  }
  if (errors.length === 0 && opts.lock_refresh_ms !== undefined && opts.lock_ttl_ms === undefined) {
    errors.push({ instancePath: '', message: 'must have property lock_ttl_ms when property lock_refresh_ms is present' })
  }
  if (errors.length > 0) {
    const e = einval(Error, 'Input validation failed', { errors: errors.slice(0, 1) })
    log.error(e)
    throw e
  }
}

class ExclusiveLock extends Face {
  constructor(opts) {
    super()
    opts = opts === undefined || opts === null ? {} : opts
    this.log = opts.log || NO_LOG
    validate(opts, this.log)
    const conn = opts.cache_connection
    const isClient = typeof conn === 'object' && typeof conn.set === 'function'
    const isConfig = typeof conn === 'string' || (!isClient && (typeof conn.host === 'string' || typeof conn.port === 'number' || typeof conn.url === 'string'))
    if (!isClient && !isConfig) throw einval(TypeError, 'A valid cache_connection to a cache store is required')
    this.cache_connection = conn
    this.name = slug(opts.name)
    this.lock_ttl_ms = opts.lock_ttl_ms === undefined ? 3000 : opts.lock_ttl_ms
    this.lock_refresh_ms = opts.lock_refresh_ms === undefined ? 1000 : opts.lock_refresh_ms
    const diff = this.lock_ttl_ms - this.lock_refresh_ms
    if (diff < 500) {
      throw einval(RangeError, 'lock_refresh_ms must be at least 500ms less than lock_ttl_ms', {
        meta: { lock_ttl_ms: this.lock_ttl_ms, lock_refresh_ms: this.lock_refresh_ms, diff },
      })
    }
    this.lock_contents = opts.lock_contents === undefined ? '1' : opts.lock_contents
    this.key_prefix = slug(opts.key_prefix === undefined ? 'exclusive-lock' : opts.key_prefix)
    this.acquired = false
    /** Truthy while the lock is held and refreshed (the refresh runs in oxlock's core). */
    this.refresh_timer = null
    this._open(connectionOf(conn, 'cache_connection'))
  }

  get key() {
    return `${this.key_prefix}:${this.name}`
  }

  /** Whether a refresh is on the wire right now (the refresh runs in oxlock's core). */
  get is_refreshing() {
    return this.acquired && !this._closed && native.elIsRefreshing(this._handle, this.key)
  }

  // Kept assignable, as upstream's plain field was; the core's state is what it reports.
  set is_refreshing(_) {}

  get [Symbol.toStringTag]() {
    return 'ExclusiveLock'
  }

  /** Resolves true when this instance holds the lock (also when it did already). */
  async acquire() {
    if (this.acquired) {
      this.log.warn({ key: this.key }, 'Lock already acquired')
      return true
    }
    // The core's refresh starts with the acquisition: its first report can come in the same
    // delivery as the acquisition's outcome, before this function goes on. Reports are held
    // until 'acquired' is out and acquire() has resolved (a macrotask later).
    const mine = []
    this.#held = mine
    const done = () => {
      if (this.#held === mine) this.#held = null
    }
    let e
    try {
      e = await this._call((h) => native.elAcquire(h, this.key, this.lock_contents, this.lock_ttl_ms, this.lock_refresh_ms), this.key)
    } catch (err) {
      done()
      throw err
    }
    if (e.ints[0] !== 1) {
      done()
      return false
    }
    setImmediate(() => {
      done()
      for (const s of mine) this._signal(...s)
    })
    this.acquired = true
    this.refresh_timer = { key: this.key, every: this.lock_refresh_ms }
    // While held, the process stays alive, as upstream's refresh setInterval kept it.
    this.#alive = setInterval(() => {}, 2 ** 31 - 1)
    this.log.info({ key: this.key }, 'Lock acquired')
    this.emit('acquired', this.key)
    return true
  }

  /** `{ lock_ttl_ms, lock_contents }` of the lock, whoever holds it, or null. */
  async inspect() {
    const e = await this._call((h) => native.elInspect(h, this.key), this.key)
    const contents = e.strs[0]
    if (contents === null) return null
    return { lock_ttl_ms: e.ints[0], lock_contents: contents }
  }

  /** Releases the lock if this instance holds it (and only while it holds our contents). */
  async release() {
    if (!this.acquired) return undefined
    this.refresh_timer = null
    this.#letGo()
    try {
      await this._call((h) => native.elRelease(h, this.key, this.lock_contents), this.key)
    } finally {
      this.acquired = false
    }
    this.log.info({ key: this.key }, 'Lock released')
    this.emit('released', this.key)
    return undefined
  }

  _signal(name, key, error) {
    if (key !== this.key) return
    if (this.#held !== null) {
      this.#held.push([name, key, error])
      return
    }
    if (name === 'refreshed') {
      this.emit('refreshed', { key, lock_ttl_ms: this.lock_ttl_ms })
    } else if (name === 'lost') {
      this.#lose()
      const err = new Error(`The lock ${key} was lost: it expired or was taken before it could be refreshed`)
      err.code = 'ELOCKLOST'
      this.#error(err)
      this.emit('released', key)
    } else if (name === 'error') {
      // The refresh failed: the core releases the lock now (then 'released', or a second
      // 'error' if that fails too); either way this instance no longer holds it.
      this.#lose()
      const err = new Error(error ? error.message : 'refresh failed')
      err.code = error ? error.code : 'E_UNAVAILABLE'
      this.log.error(err)
      this.#error(err)
    } else if (name === 'released') {
      this.#lose()
      this.emit('released', key)
    }
  }

  #alive = null
  /** Reports of the core held while an acquire() is under way (see acquire()). */
  #held = null

  #letGo() {
    clearInterval(this.#alive)
    this.#alive = null
  }

  #lose() {
    this.acquired = false
    this.refresh_timer = null
    this.#letGo()
  }

  // An `error` with no listener would throw out of the refresh: it is logged instead.
  #error(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }

  /** Closes oxlock's connection (not the cache_connection client). */
  close() {
    return this._close()
  }
}

module.exports = ExclusiveLock
