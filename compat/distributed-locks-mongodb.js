'use strict'

// require('oxlock/distributed-locks-mongodb'): MongoStorage({ url, database, collectionName })
// on oxlock's Rust core (the official `mongodb` crate), on the document layout of
// distributed-locks-mongodb, so processes still on it share the collection:
// `{ _id: <key>, value, ttl (seconds), obtained_at (a date from the server's clock) }`,
// keys as they are (no prefix). The queries are in src/compat/distributed_locks/mongo.rs.

const { Face } = require('../lib/face.js')
const { native } = require('../lib/native.js')
const { rangeError, typeError } = require('../lib/errors.js')

const DEFAULT_CLEANUP_S = 60
const MAX_TTL_S = 2147483647

class MongoStorage extends Face {
  /**
   * `url`: a mongodb:// connection string; `database`: the database (default: the URL's,
   * else "test"); `collectionName`: the lock collection (default "locks");
   * `cleanupInterval`: seconds between deletions of expired documents while open (0: none).
   * Nothing connects before the first call.
   */
  constructor({ url, database, collectionName = 'locks', cleanupInterval = DEFAULT_CLEANUP_S } = {}) {
    super()
    if (typeof url !== 'string') throw typeError(`url must be a mongodb:// connection string, got ${typeof url}`, 'E_CONFIG')
    if (database !== undefined && database !== null && typeof database !== 'string') {
      throw typeError(`database must be a string, got ${typeof database}`, 'E_CONFIG')
    }
    if (typeof collectionName !== 'string') throw typeError(`collectionName must be a string, got ${typeof collectionName}`, 'E_CONFIG')
    if (typeof cleanupInterval !== 'number' || !(cleanupInterval >= 0 && cleanupInterval <= MAX_TTL_S)) {
      throw rangeError(`cleanupInterval must be a number of seconds >= 0, got ${cleanupInterval}`, 'E_CONFIG')
    }
    this.database = database ?? undefined
    this.collectionName = collectionName
    this._open(url, (context) => native.faceOpenMongo(context, url, database ?? null, collectionName, Math.ceil(cleanupInterval * 1000)))
  }

  /** Connects, reads the server's clock and deletes expired documents. */
  async init() {
    await this._call((h) => native.dlMongoInit(h))
  }

  /** Takes `key` for `ttl` seconds if nobody holds it (or its holder's ttl ran out); resolves whether it did. */
  async set(key, value, { ttl } = {}) {
    const seconds = Number(ttl)
    if (!(seconds > 0 && seconds <= MAX_TTL_S)) throw rangeError(`ttl must be a positive number of seconds, got ${ttl}`)
    const k = String(key)
    const e = await this._call((h) => native.dlMongoSet(h, k, String(value), seconds), k)
    return e.ints[0] === 1
  }

  /** Deletes `key` if it holds `value`; resolves true. */
  async unSet(key, value) {
    const k = String(key)
    await this._call((h) => native.dlMongoUnset(h, k, String(value)), k)
    return true
  }

  close() {
    return this._close()
  }
}

module.exports = { MongoStorage }
