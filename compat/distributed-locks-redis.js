'use strict'

// require('oxlock/distributed-locks-redis'): RedisStorage({ url, keyPrefix }) on oxlock's
// Rust core. Key `<keyPrefix>:<key>` holding the lock's value, taken only when absent, with
// the ttl (seconds, fractions allowed) as its expiry; released only while it holds our value.

const { Face } = require('../lib/face.js')
const { connectionOf } = require('../lib/connection.js')
const { native } = require('../lib/native.js')
const { rangeError } = require('../lib/errors.js')

class RedisStorage extends Face {
  constructor({ url, keyPrefix = 'distributed-locks', ...connection } = {}) {
    super()
    this.keyPrefix = keyPrefix
    this._open(url !== undefined ? connectionOf(url, 'url') : connectionOf(connection, 'options'))
  }

  async init() {}

  /** Takes `key` for `ttl` seconds if nobody holds it; resolves whether it did. */
  async set(key, value, { ttl } = {}) {
    const ms = Math.ceil(Number(ttl) * 1000)
    if (!(ms > 0)) throw rangeError(`ttl must be a positive number of seconds, got ${ttl}`)
    const k = `${this.keyPrefix}:${key}`
    const e = await this._call((h) => native.dlSet(h, k, String(value), ms), k)
    return e.ints[0] === 1
  }

  /** Deletes `key` if it holds `value`; resolves true. */
  async unSet(key, value) {
    const k = `${this.keyPrefix}:${key}`
    await this._call((h) => native.dlUnset(h, k, String(value)), k)
    return true
  }

  close() {
    return this._close()
  }
}

module.exports = { RedisStorage }
