// ESM entry: the same module instance as require('oxlock').
import oxlock from './index.js'

export default oxlock
export const { create, wait, InMemoryLock, RedisLock, PostgresLock, LockHandle, LockError, ConfigError, DestroyedError, AbortError } = oxlock
