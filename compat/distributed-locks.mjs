// ESM entry of oxlock/distributed-locks: the same module as require('oxlock/distributed-locks').
import LocksFactory from './distributed-locks.js'

export default LocksFactory
export const { LockFactory, Lock, FailedToObtainKey, RedisStorage, PostgresqlStorage, MongoStorage } = LocksFactory
export { LocksFactory }
