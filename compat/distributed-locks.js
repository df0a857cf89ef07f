'use strict'

// require('oxlock/distributed-locks'): distributed-locks 1.0.5's LocksFactory, Lock and
// FailedToObtainKey, with its storages. ttl and interval are in seconds and `retries` counts
// every attempt, as upstream. Fixed, compatibly: a storage that throws makes lock() reject
// (upstream hung), a fractional ttl works, FailedToObtainKey has its name and a code.

const { randomUUID } = require('node:crypto')
const { RedisStorage } = require('./distributed-locks-redis.js')
const { PostgresqlStorage } = require('./distributed-locks-postgresql.js')
const { MongoStorage } = require('./distributed-locks-mongodb.js')

class FailedToObtainKey extends Error {
  constructor(key, metaData = {}) {
    super(`Failed to obtain lock for key ${key}, metaData:${metaData}`)
    this.name = 'FailedToObtainKey'
    this.code = 'E_LOCK_BUSY'
    this.key = key
    this.metaData = metaData
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class Lock {
  constructor(storage, key, machineId = '1') {
    this.storage = storage
    this.key = key
    this.value = `${key}-${machineId}-${randomUUID()}`
  }

  /** Resolves true once the key is ours; rejects FailedToObtainKey after `retries` attempts. */
  async lock({ ttl = 10, retries = 3, interval = 1 } = {}) {
    const forever = !(Number.isInteger(retries) && retries >= 0)
    for (let attempt = 0; forever || attempt < retries; attempt++) {
      if (attempt > 0) await sleep(interval * 1000)
      if (await this.storage.set(this.key, this.value, { ttl })) return true
    }
    throw new FailedToObtainKey(this.key, { retries, ttl, interval })
  }

  /** Releases the key if it is still ours; resolves true. */
  async unlock() {
    await this.storage.unSet(this.key, this.value)
    return true
  }
}

class LocksFactory {
  constructor(storage, { machineId = '1' } = {}) {
    this.storage = storage
    this.machineId = machineId
  }

  init() {
    return this.storage.init()
  }

  createLock(key) {
    return new Lock(this.storage, key, this.machineId)
  }

  close() {
    return this.storage.close()
  }
}

module.exports = LocksFactory
Object.assign(module.exports, {
  __esModule: true,
  default: LocksFactory,
  LocksFactory,
  LockFactory: LocksFactory,
  Lock,
  FailedToObtainKey,
  RedisStorage,
  PostgresqlStorage,
  MongoStorage,
})
