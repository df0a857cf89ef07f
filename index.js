'use strict'

// oxlock's main entry: the API of @leverege/lock. The layers below are in lib/ (see
// ARCHITECTURE.md); lock state, queues, expiry and deadlines live in the Rust core.

const { createNative } = require('./lib/manager.js')
const { InMemoryLock } = require('./lib/memory.js')
const { RedisLock, PostgresLock } = require('./lib/remote.js')
const { LockHandle } = require('./lib/handle.js')
const { LockError, ConfigError, DestroyedError, AbortError } = require('./lib/errors.js')

const BACKENDS = { inMemory: InMemoryLock, redis: RedisLock, postgres: PostgresLock }

/** Creates a lock manager from @leverege/lock-style options. Synchronous. */
function create(options) {
  const info = createNative(options)
  return new BACKENDS[info.type](options, info)
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
  PostgresLock,
  LockHandle,
  LockError,
  ConfigError,
  DestroyedError,
  AbortError,
}
module.exports.default = module.exports
