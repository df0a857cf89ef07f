import { RedisStorage } from './distributed-locks-redis'
import { PostgresqlStorage } from './distributed-locks-postgresql'

/** What a storage provides (any object with these methods works). */
export interface Storage {
  init(): unknown
  set(key: string, value: string, options: { ttl: number }): boolean | Promise<boolean>
  unSet(key: string, value: string): boolean | Promise<boolean>
  close(): unknown
}

export interface LockOptions {
  /** Seconds (fractions allowed). Default 10. */
  ttl?: number
  /** Total attempts; 0 rejects at once; negative or non-integer: no limit. Default 3. */
  retries?: number
  /** Seconds between attempts. Default 1. */
  interval?: number
}

export declare class FailedToObtainKey extends Error {
  readonly name: 'FailedToObtainKey'
  readonly code: 'E_LOCK_BUSY'
  readonly key: string
}

export declare class Lock {
  constructor(storage: Storage, key: string, machineId?: string)
  readonly key: string
  /** `<key>-<machineId>-<uuid>` */
  readonly value: string
  lock(options?: LockOptions): Promise<true>
  unlock(): Promise<true>
}

export declare class LocksFactory {
  constructor(storage: Storage, options?: { machineId?: string })
  init(): Promise<unknown>
  createLock(key: string): Lock
  close(): Promise<unknown>
}

export interface MongoStorageOptions {
  /** A mongodb:// connection string (mongodb+srv:// is not supported). */
  url: string
  /** Default: the URL's database, else "test". */
  database?: string
  /** Default "locks". */
  collectionName?: string
  /** Seconds between deletions of expired lock documents while open; 0: none. Default 60. */
  cleanupInterval?: number
}

/** distributed-locks-mongodb's storage: documents `{ _id: key, value, ttl, obtained_at }`. */
export declare class MongoStorage implements Storage {
  constructor(options: MongoStorageOptions)
  readonly database: string | undefined
  readonly collectionName: string
  /** Connects, reads the server's clock, deletes expired documents. */
  init(): Promise<void>
  set(key: string, value: string, options: { ttl: number }): Promise<boolean>
  unSet(key: string, value: string): Promise<true>
  close(): Promise<void>
}

export { LocksFactory as LockFactory, RedisStorage, PostgresqlStorage }
export default LocksFactory
