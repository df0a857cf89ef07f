'use strict'

// require('oxlock/fast-locky'): the Locky class of fast-locky 1.0.0, on oxlock's Rust core.
// Keys and the tracking set are fast-locky's, so old and new processes share them. Fixed,
// compatibly: the ttl applies at lock() time (ms), extend() uses ms, `expire` fires once per
// real expiry (never for a held key), no polling without a ttl, close() leaves nothing
// running, and a batch is one pipelined round trip.

const { Face } = require('../lib/face.js')
const { connectionOf } = require('../lib/connection.js')

class Formatter {
  constructor(name) {
    this.prefix = [name, 'lock', 'resource'].filter((p) => p !== undefined && p !== null && p !== '').join(':') + ':'
    this.set = [name, 'lock', 'currents'].filter((p) => p !== undefined && p !== null && p !== '').join(':')
  }

  getKey(resource) {
    return this.prefix + resource
  }

  getResource(key) {
    return key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key
  }
}

function connectionFrom(redis) {
  if (typeof redis !== 'function') return connectionOf(redis, 'redis')
  // A factory: called once, as fast-locky did; we read its client's settings and close it.
  const client = redis()
  const conn = connectionOf(client, 'redis()')
  if (client && typeof client.quit === 'function') Promise.resolve(client.quit()).catch(() => {})
  return conn
}

class Locky extends Face {
  constructor(options = {}) {
    super()
    const o = options || {}
    this.ttl = o.ttl === undefined || o.ttl === null ? null : o.ttl
    this.formatter = new Formatter(o.name)
    this.set = o.set || this.formatter.set
    this._open(connectionFrom(o.redis))
    /** The connection oxlock opened (fast-locky exposed its then-redis client here). */
    this.redis = { handle: this._handle }
    if (this.ttl) native().flWatch(this._handle, this.set, this.ttl / 2)
  }

  _signal(name, key, error) {
    if (name === 'expire') this.emit('expire', this.formatter.getResource(key))
    else if (name === 'error') this.error(toError(error))
  }

  /** Locks every `{ resource, locker }`; `force` takes them even if held. Resolves true. */
  lock(collection, force) {
    const items = [...collection]
    const keys = items.map((i) => this.formatter.getKey(i.resource))
    const lockers = items.map((i) => String(i.locker))
    return this.#run((h) => native().flLock(h, this.set, keys, lockers, Boolean(force), this.ttl || 0), (e) => {
      e.ints.forEach((ok, i) => ok === 1 && this.emit('lock', items[i].resource, items[i].locker))
      return true
    })
  }

  /** Unlocks `resources`. Resolves true. */
  unlock(resources) {
    const list = [...resources]
    const keys = list.map((r) => this.formatter.getKey(r))
    return this.#run((h) => native().flUnlock(h, this.set, keys), (e) => {
      e.ints.forEach((n, i) => n === 1 && this.emit('unlock', list[i]))
      return true
    })
  }

  /** Makes the locks of `resources` expire `ttl` ms from now. Without a ttl: undefined. */
  extend(resources) {
    if (!this.ttl) return Promise.resolve(undefined)
    const list = [...resources]
    const keys = list.map((r) => this.formatter.getKey(r))
    return this.#run((h) => native().flExtend(h, keys, this.ttl), (e) => {
      e.ints.forEach((n, i) => n === 1 && this.emit('extend', list[i]))
      return true
    })
  }

  /** The locker of each resource (a string), null where it is free. */
  getLockers(resources) {
    const keys = [...resources].map((r) => this.formatter.getKey(r))
    return this.#run((h) => native().flGetLockers(h, keys), (e) => e.strs)
  }

  getLocker(resources) {
    return this.getLockers(resources)
  }

  /** The keys of the tracking set. */
  getLocks() {
    return this.#run((h) => native().flGetLocks(h, this.set), (e) => e.strs)
  }

  /** Emits `expire` for each of `lockKeys` that is gone, once across every process. */
  expireLocks(lockKeys) {
    const keys = [...lockKeys]
    return this.#run((h) => native().flExpireLocks(h, this.set, keys), () => undefined)
  }

  /** Stops the expiry watch and closes the connection. */
  close() {
    return this._close()
  }

  /** Emits `error` (dropped when nobody listens: a lock library must not crash the process). */
  error(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }

  // fast-locky never rejected: errors go to 'error' and the call resolves undefined.
  #run(start, done) {
    return this._call(start).then(done, (err) => {
      this.error(err)
      return undefined
    })
  }
}

function toError(e) {
  const err = new Error(e ? e.message : 'unknown error')
  if (e) err.code = e.code
  return err
}

const native = () => require('../lib/native.js').native

module.exports = Locky
