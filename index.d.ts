import { EventEmitter } from 'node:events'

/** One Redis master: an object or a `redis://` / `rediss://` URL. */
export type RedisConnection =
  | string
  | { host?: string; port?: number; username?: string; password?: string; db?: number; tls?: boolean | RedisTls }
  | RedisSentinelConnection
  | RedisClusterConnection

/** A Redis Cluster: its seed nodes; credentials and tls apply to every node (no db). */
export interface RedisClusterConnection {
  cluster: ReadonlyArray<string | { host?: string; port?: number }>
  username?: string
  password?: string
  tls?: boolean | RedisTls
}

/** A master found through Redis Sentinel, and found again after a failover. Credentials, db
 * and tls are the master's; a sentinel's own go in its entry. */
export interface RedisSentinelConnection {
  sentinels: ReadonlyArray<string | { host?: string; port?: number; username?: string; password?: string; tls?: boolean | RedisTls }>
  /** The master's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  name: string
  username?: string
  password?: string
  db?: number
  tls?: boolean | RedisTls
}

/** TLS beyond the system roots. PEM as strings or Buffers. */
export interface RedisTls {
  /** CA certificate(s) to trust instead of the system roots. */
  ca?: string | Uint8Array
  /** Client certificate and key (mutual TLS); they go together. */
  cert?: string | Uint8Array
  key?: string | Uint8Array
  /** `false` skips certificate and host name checks (tests only). Default true. */
  rejectUnauthorized?: boolean
  /** The name the server's certificate must carry (and the SNI sent), when it is not the
   * host connected to. A plain host and port only: not with `sentinels` or `cluster`. */
  servername?: string
}

/** node-redlock's options, plus the timeouts the Redlock spec asks for. */
export interface RedisLockOptions {
  /** Expected clock drift as a share of the ttl; drift = driftFactor × ttl + 2 ms. Default 0.01. */
  driftFactor?: number
  /** Attempts after the first; -1 = no limit. Default 10. */
  retryCount?: number
  /** ms between attempts. Default 200. */
  retryDelay?: number
  /** The delay is retryDelay ± retryJitter ms. Default 100. */
  retryJitter?: number
  /** Bound on one command to one node, ms. Default 500. */
  nodeTimeout?: number
  /** Bound on connecting to one node, ms. Default 1000. */
  connectTimeout?: number
  /** `false`: no fence counter, and acquiring one key is a plain `SET NX PX` (no script, far
   * less work for the server); handles then have `fence` undefined. Default true. */
  fencing?: boolean
}

/** One PostgreSQL database: a `postgres://` URL (`?sslmode=require` for TLS) or its fields. */
export type PostgresConnection =
  | string
  | {
      /** Default 127.0.0.1. */
      host?: string
      /** Default 5432. */
      port?: number
      /** Default 'postgres'. `username` is the same option. */
      user?: string
      username?: string
      password?: string
      /** Default: the user's name. */
      database?: string
      /** `true` (system roots) or `{ ca, cert, key, rejectUnauthorized }`. Default false. */
      ssl?: boolean | Omit<RedisTls, 'servername'>
    }

/** `type: 'postgres'`: node-redlock's retry names, plus the pool's. */
export interface PostgresLockOptions {
  /** Timer retries after the first attempt; -1 = no limit. Default 10. Attempts woken by NOTIFY come on top. */
  retryCount?: number
  /** ms between timed attempts; a waiter is woken earlier by the holder's unlock (NOTIFY). Default 200. */
  retryDelay?: number
  /** The delay is retryDelay ± retryJitter ms. Default 100. */
  retryJitter?: number
  /** Bound on opening a connection, ms. Default 2000. */
  connectTimeout?: number
  /** Bound on one statement, ms. Default 2000. */
  queryTimeout?: number
  /** Connections at most (opened on demand), plus one for LISTEN while someone waits. Default 4. */
  poolSize?: number
  /** The lock table (created if absent), its `<table>_fence` sequence and its NOTIFY channel. Default 'oxlock_locks'. */
  tableName?: string
}

/** Options of `create()`, flat or under `lockConfig` (which wins). */
export interface LockConfig {
  /** Backend. Default `'inMemory'`. */
  type?: 'inMemory' | 'redis' | 'postgres'
  /** Redis: one node, or an array of independent masters (Redlock, quorum ⌊N/2⌋+1). Default 127.0.0.1:6379. PostgreSQL: one database. */
  connection?: RedisConnection | RedisConnection[] | PostgresConnection
  /** Attempts after the first before giving up; negative waits without limit. Default 10. Same option as `lockOptions.retryCount` (give one). */
  retry?: number
  /** ms between attempts; a contended lock() waits up to `retry × delay` ms. Default 200. Same option as `lockOptions.retryDelay`. */
  delay?: number
  /** Default ttl in ms when lock() gets none. Default 10 000. */
  ttl?: number
  /** In memory only. `'instance'` (default): locks belong to this manager. `'process'`: one table for every manager of the process, worker threads included. */
  scope?: 'instance' | 'process'
  /** Redis: node-redlock's options. For inMemory, `retryCount` / `retryDelay` stand for `retry` / `delay`. */
  lockOptions?: RedisLockOptions | PostgresLockOptions
}

export interface CreateOptions extends LockConfig {
  /** Prefix lockNs() puts before keys: `${namespace}:${key}`. */
  namespace?: string
  /** An object, or the JSON string of a LOCK_CONFIG environment variable. */
  lockConfig?: LockConfig | string
}

export interface LockOptions {
  /** Lock time-to-live in ms (default: the manager's, 10 000). */
  ttl?: number
  /** Aborting leaves the queue at once and rejects with AbortError. */
  signal?: AbortSignal
}

/** What a lock holds: one key, or several taken together (a multi-resource lock). */
export type Resource = string | readonly string[]

export declare class LockHandle<R extends Resource = string> implements AsyncDisposable {
  protected constructor()
  /** The locked key, exactly as stored (a multi-resource lock: its keys, as given). */
  readonly resource: R
  /** The lock's unguessable token (32 hex chars). */
  readonly value: string
  /** When the lock expires unless extended, in epoch ms; 0 once released or taken over. */
  readonly expiration: number
  /** This acquisition's fencing number (a safe integer): greater than every earlier acquisition's of the key. See the README's "Fencing tokens". (`undefined` on a Redis manager made with `lockOptions.fencing: false`.) */
  readonly fence: number
  /** Releases the lock. Resolves also when it had expired or was released already, and never frees another holder's lock. */
  unlock(): Promise<void>
  /** Makes the lock expire `ttl` ms from now; resolves the handle to use. Rejects with LockError `E_LOCK_EXPIRED` if it is no longer held. */
  extend(ttl?: number): Promise<LockHandle<R>>
  [Symbol.asyncDispose](): Promise<void>
}

/** What every manager emits (it is an EventEmitter). 'lost': a held lock expired (or was taken) before its unlock. 'extended': an extend succeeded. 'error': a node failed a call (no listener: nothing happens). 'reconnect': it answers again. */
declare class LockManagerEvents extends EventEmitter {
  on(event: 'lost', listener: (e: { resource: string }) => void): this
  on(event: 'extended', listener: (e: { resource: string; value: string; expiration: number }) => void): this
  on(event: 'error', listener: (err: NodeFailureError) => void): this
  on(event: 'reconnect', listener: (e: { node: string }) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

export declare class InMemoryLock extends LockManagerEvents {
  constructor(options?: CreateOptions)
  readonly namespace: string | undefined
  readonly type: 'inMemory'
  /** Keys with state in this manager's table (held or awaited). */
  readonly size: number
  /** Locks `key` as given. */
  lock(key: string, ttl?: number | LockOptions): Promise<LockHandle>
  lock(keys: readonly string[], ttl?: number | LockOptions): Promise<LockHandle<readonly string[]>>
  /** Locks `${namespace}:${key}`. */
  lockNs(key: string, ttl?: number | LockOptions): Promise<LockHandle>
  lockNs(keys: readonly string[], ttl?: number | LockOptions): Promise<LockHandle<readonly string[]>>
  /** Whether `key` is held right now. */
  isLocked(key: string): boolean
  /** Holds `key` while `fn(signal, handle)` runs (extended automatically), releases it when `fn` settles, resolves `fn`'s result. */
  using<T>(key: string, fn: (signal: AbortSignal, handle: LockHandle) => T | Promise<T>, options?: UsingOptions): Promise<T>
  using<T>(keys: readonly string[], fn: (signal: AbortSignal, handle: LockHandle<readonly string[]>) => T | Promise<T>, options?: UsingOptions): Promise<T>
  /** `using()` on `${namespace}:${key}`. */
  usingNs<T>(key: string, fn: (signal: AbortSignal, handle: LockHandle) => T | Promise<T>, options?: UsingOptions): Promise<T>
  usingNs<T>(keys: readonly string[], fn: (signal: AbortSignal, handle: LockHandle<readonly string[]>) => T | Promise<T>, options?: UsingOptions): Promise<T>
  /** Releases this manager's locks, rejects its queued lock() calls with DestroyedError. Idempotent. */
  destroy(): Promise<void>
}

/** A Redis (Redlock) lock manager. */
export declare class RedisLock extends LockManagerEvents {
  constructor(options?: CreateOptions)
  readonly namespace: string | undefined
  readonly type: 'redis'
  /** Keys this manager holds or awaits in this process. */
  readonly size: number
  /** Locks `key` (the Redis key is exactly `key`). Calls of this manager for one key queue locally, FIFO. */
  lock(key: string, ttl?: number | LockOptions): Promise<RedisLockHandle>
  lock(keys: readonly string[], ttl?: number | LockOptions): Promise<RedisLockHandle<readonly string[]>>
  /** Locks `${namespace}:${key}`. */
  lockNs(key: string, ttl?: number | LockOptions): Promise<RedisLockHandle>
  lockNs(keys: readonly string[], ttl?: number | LockOptions): Promise<RedisLockHandle<readonly string[]>>
  /** Whether this manager holds `key` right now (within its validity). Sync, no I/O. */
  isLocked(key: string): boolean
  /** Holds `key` while `fn(signal, handle)` runs (extended automatically), releases it when `fn` settles, resolves `fn`'s result. */
  using<T>(key: string, fn: (signal: AbortSignal, handle: LockHandle) => T | Promise<T>, options?: UsingOptions): Promise<T>
  using<T>(keys: readonly string[], fn: (signal: AbortSignal, handle: LockHandle<readonly string[]>) => T | Promise<T>, options?: UsingOptions): Promise<T>
  /** `using()` on `${namespace}:${key}`. */
  usingNs<T>(key: string, fn: (signal: AbortSignal, handle: LockHandle) => T | Promise<T>, options?: UsingOptions): Promise<T>
  usingNs<T>(keys: readonly string[], fn: (signal: AbortSignal, handle: LockHandle<readonly string[]>) => T | Promise<T>, options?: UsingOptions): Promise<T>
  /** Releases held locks, rejects queued lock() calls, closes the connections. Idempotent. */
  destroy(): Promise<void>
}

export declare class RedisLockHandle<R extends Resource = string> extends LockHandle<R> {
  /** Attempts the acquisition took. */
  readonly attempts: number
  extend(ttl?: number): Promise<RedisLockHandle<R>>
}

/** A PostgreSQL lock manager: locks are rows of one table, decided by the database's clock. */
export declare class PostgresLock extends LockManagerEvents {
  constructor(options?: CreateOptions)
  readonly namespace: string | undefined
  readonly type: 'postgres'
  /** Keys this manager holds or awaits in this process. */
  readonly size: number
  /** Locks `key` (the row's key is `key`'s UTF-8 bytes). Calls of this manager for one key queue locally, FIFO. */
  lock(key: string, ttl?: number | LockOptions): Promise<PostgresLockHandle>
  /** An array of two or more keys rejects with `E_UNSUPPORTED` (no multi-resource locks on PostgreSQL). */
  lock(keys: readonly string[], ttl?: number | LockOptions): Promise<RedisLockHandle<readonly string[]>>
  /** Locks `${namespace}:${key}`. */
  lockNs(key: string, ttl?: number | LockOptions): Promise<PostgresLockHandle>
  lockNs(keys: readonly string[], ttl?: number | LockOptions): Promise<RedisLockHandle<readonly string[]>>
  /** Whether this manager holds `key` right now (within its validity). Sync, no I/O. */
  isLocked(key: string): boolean
  /** Holds `key` while `fn(signal, handle)` runs (extended automatically), releases it when `fn` settles, resolves `fn`'s result. */
  using<T>(key: string, fn: (signal: AbortSignal, handle: LockHandle) => T | Promise<T>, options?: UsingOptions): Promise<T>
  using<T>(keys: readonly string[], fn: (signal: AbortSignal, handle: LockHandle<readonly string[]>) => T | Promise<T>, options?: UsingOptions): Promise<T>
  /** `using()` on `${namespace}:${key}`. */
  usingNs<T>(key: string, fn: (signal: AbortSignal, handle: LockHandle) => T | Promise<T>, options?: UsingOptions): Promise<T>
  usingNs<T>(keys: readonly string[], fn: (signal: AbortSignal, handle: LockHandle<readonly string[]>) => T | Promise<T>, options?: UsingOptions): Promise<T>
  /** Releases held locks, rejects queued lock() calls, closes the connections. Idempotent. */
  destroy(): Promise<void>
}

export declare class PostgresLockHandle extends RedisLockHandle<string> {
  /** From the table's sequence: greater than every earlier acquisition's of any key on the table, across processes and restarts. */
  readonly fence: number
  extend(ttl?: number): Promise<PostgresLockHandle>
}

export type Lock = InMemoryLock | RedisLock | PostgresLock

/**
 * Creates a lock manager. Synchronous; throws on a bad configuration. The result's class
 * follows `type` when it is known statically; with `lockConfig` from an environment
 * string it is the `Lock` union.
 */
export declare function create(
  options: CreateOptions & ({ type: 'redis'; lockConfig?: undefined } | { lockConfig: LockConfig & { type: 'redis' } }),
): RedisLock
export declare function create(
  options: CreateOptions & ({ type: 'postgres'; lockConfig?: undefined } | { lockConfig: LockConfig & { type: 'postgres' } }),
): PostgresLock
export declare function create(
  options?: CreateOptions & { type?: 'inMemory'; lockConfig?: LockConfig & { type?: 'inMemory' } },
): InMemoryLock
export declare function create(options?: CreateOptions): Lock
/** A promise version of setTimeout. */
export declare function wait(ms: number): Promise<void>

export type LockErrorCode = 'E_LOCK_BUSY' | 'E_LOCK_EXPIRED' | 'E_UNAVAILABLE' | 'E_AUTH' | 'E_CROSSSLOT' | 'E_LOCK_LOST' | 'E_UNSUPPORTED'

/** Options of `using()`. */
export interface UsingOptions {
  /** The lock's ttl, ms; it is extended half a ttl before it would expire. Default: the manager's. */
  ttl?: number
  /** How long the lock may be held in all, ms. Default: no bound. */
  maxHoldMs?: number
  /** How many times it may be extended. Default: no bound. */
  maxExtensions?: number
  /** Aborts the wait for the lock, and `fn`'s signal. */
  signal?: AbortSignal
}

/**
 * `E_LOCK_BUSY`: the resource stayed held for the whole retry budget. `E_LOCK_EXPIRED`:
 * extend() of a lock no longer held. `E_UNAVAILABLE`: the store (Redis: a quorum of nodes) could not be
 * reached; `causes` says why for each node. `E_AUTH`: the nodes that kept a quorum from forming
 * refused the credentials (reported at the first attempt, not retried).
 */
export declare class LockError extends Error {
  readonly name: 'LockError'
  readonly code: LockErrorCode
  /** Attempts made (`retry + 1` for a busy lock, 0 for an expired one). */
  readonly attempts: number
  /** The key (a multi-resource lock: its keys joined by `,`). */
  readonly resource: string
  /** A multi-resource lock's keys. */
  readonly resources?: readonly string[]
  /** E_UNAVAILABLE, E_AUTH: `host:port: reason` per failing node (never credentials). */
  readonly causes?: string[]
  /** E_UNAVAILABLE, E_AUTH: the same, structured. */
  readonly failures?: NodeFailure[]
}

/** Why one node failed. */
export interface NodeFailure {
  /** `host:port` */
  node: string
  kind: 'refused' | 'timeout' | 'dns' | 'tls' | 'auth' | 'closed' | 'server' | 'io'
  message: string
}
/** What a manager's 'error' event carries: one node (or database) failed a call. */
export interface NodeFailureError extends Error {
  readonly code: 'E_NODE_FAILURE'
  /** `host:port` (never credentials) */
  readonly node: string
  readonly kind: NodeFailure['kind']
}
/** A configuration problem (`E_CONFIG`). Wrong-typed / out-of-range options throw TypeError / RangeError with the same code. */
export declare class ConfigError extends Error {
  readonly name: 'ConfigError'
  readonly code: 'E_CONFIG'
}
/** The manager was destroyed (`E_DESTROYED`). */
export declare class DestroyedError extends Error {
  readonly name: 'DestroyedError'
  readonly code: 'E_DESTROYED'
}
/** The signal aborted a queued lock() (`E_ABORTED`); `cause` is the signal's reason. */
export declare class AbortError extends Error {
  readonly name: 'AbortError'
  readonly code: 'E_ABORTED'
  readonly resource: string
  readonly resources?: readonly string[]
}

declare const oxlock: {
  create: typeof create
  wait: typeof wait
  InMemoryLock: typeof InMemoryLock
  RedisLock: typeof RedisLock
  PostgresLock: typeof PostgresLock
  LockHandle: typeof LockHandle
  LockError: typeof LockError
  ConfigError: typeof ConfigError
  DestroyedError: typeof DestroyedError
  AbortError: typeof AbortError
}
export default oxlock
