'use strict'

// require('oxlock/distributed-locks-postgresql'): PostgresqlStorage({ host, port, database,
// username, password, keyPrefix, tableName, url }) on oxlock's Rust core, on the table
// layout of distributed-locks-postgresql, so processes still on it share the table:
// `<tableName>(key varchar(50) primary key, value varchar(100), ttl integer seconds,
// obtained_at timestamp)`, keys `<keyPrefix>:<key>`. The SQL is in
// src/compat/distributed_locks/postgres.rs.

const { Face } = require('../lib/face.js')
const { native } = require('../lib/native.js')
const { rangeError, typeError } = require('../lib/errors.js')

// Upstream's column sizes, in characters as PostgreSQL counts them (code points).
const KEY_CHARS = 50
const VALUE_CHARS = 100
const chars = (s) => [...s].length

class PostgresqlStorage extends Face {
  constructor({ host, port, database, username, password, keyPrefix = 'distributed-locks', tableName = 'locks', url, ssl } = {}) {
    super()
    if (typeof keyPrefix !== 'string') throw typeError(`keyPrefix must be a string, got ${typeof keyPrefix}`, 'E_CONFIG')
    if (typeof tableName !== 'string') throw typeError(`tableName must be a string, got ${typeof tableName}`, 'E_CONFIG')
    this.keyPrefix = keyPrefix
    this.tableName = tableName
    const connection = url !== undefined ? url : { host, port, database, username, password, ssl }
    for (const k of Object.keys(connection)) if (connection[k] === undefined) delete connection[k]
    this._open(connection, (context, c) => native.faceOpenPostgres(context, c, tableName))
  }

  /** Creates the table if it is absent (upstream's schema). */
  async init() {
    await this._call((h) => native.dlPgInit(h))
  }

  /** Takes `key` for `ttl` seconds if nobody holds it (or its holder's ttl ran out); resolves whether it did. */
  async set(key, value, { ttl } = {}) {
    const seconds = Number(ttl)
    if (!(seconds > 0 && seconds <= 2147483647)) throw rangeError(`ttl must be a positive number of seconds, got ${ttl}`)
    const k = this.#key(key)
    value = String(value)
    if (chars(value) > VALUE_CHARS) throw rangeError(`the lock's value is ${chars(value)} characters; the table's value column holds ${VALUE_CHARS}`)
    const e = await this._call((h) => native.dlPgSet(h, k, value, seconds), k)
    return e.ints[0] === 1
  }

  /** Deletes `key` if it holds `value`; resolves true. */
  async unSet(key, value) {
    const k = this.#key(key)
    await this._call((h) => native.dlPgUnset(h, k, String(value)), k)
    return true
  }

  close() {
    return this._close()
  }

  #key(key) {
    const k = `${this.keyPrefix}:${key}`
    if (chars(k) > KEY_CHARS) {
      throw rangeError(`the key "${k}" is ${chars(k)} characters with its prefix; the table's key column holds ${KEY_CHARS}`)
    }
    return k
  }
}

module.exports = { PostgresqlStorage }
