import { EventEmitter } from 'node:events'

export interface ExclusiveLockOptions {
  /** Required: what the lock is for; slugified into the key. */
  name: string
  /** Required: an ioredis / node-redis client (its settings are read; oxlock opens its own connection), or `{ host, port, ... }` / a redis:// URL. */
  cache_connection: object | string
  log?: { info: Function; warn: Function; error: Function; debug: Function; trace?: Function }
  /** ms, default 3000; with lock_refresh_ms. */
  lock_ttl_ms?: number
  /** ms, default 1000; at least 500 below lock_ttl_ms. */
  lock_refresh_ms?: number
  /** Stored in the key. Default '1'. */
  lock_contents?: string
  /** Default 'exclusive-lock'. */
  key_prefix?: string
}

/** exclusive-lock's ExclusiveLock, on oxlock's core. Events: acquired(key), refreshed({ key, lock_ttl_ms }), released(key), error(err) (code ELOCKLOST when the lock was lost). */
declare class ExclusiveLock extends EventEmitter {
  constructor(options: ExclusiveLockOptions)
  readonly key: string
  readonly name: string
  readonly lock_ttl_ms: number
  readonly lock_refresh_ms: number
  readonly lock_contents: string
  readonly cache_connection: object | string
  readonly log: object
  acquired: boolean
  is_refreshing: boolean
  refresh_timer: object | null
  acquire(): Promise<boolean>
  inspect(): Promise<{ lock_ttl_ms: number; lock_contents: string } | null>
  release(): Promise<undefined>
  /** Closes oxlock's own connection. */
  close(): Promise<void>
}

export = ExclusiveLock
