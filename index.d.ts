/** Options of `create()`, flat or under `lockConfig` (which wins). */
export interface LockConfig {
  /** Backend. Default `'inMemory'`. */
  type?: 'inMemory'
  /** In memory: attempts after the first before giving up; negative waits without limit. Default 10. */
  retry?: number
  /** In memory: ms between attempts; a contended lock() waits up to `retry × delay` ms. Default 200. */
  delay?: number
  /** Default ttl in ms when lock() gets none. Default 10 000. */
  ttl?: number
  /** `'instance'` (default): locks belong to this manager. `'process'`: one table for every manager of the process, worker threads included. */
  scope?: 'instance' | 'process'
  /** node-redlock's names, accepted for inMemory as `retry` / `delay`. */
  lockOptions?: { retryCount?: number; retryDelay?: number; driftFactor?: number; retryJitter?: number }
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

export declare class LockHandle implements AsyncDisposable {
  private constructor()
  /** The locked key, exactly as stored. */
  readonly resource: string
  /** The lock's unguessable token (32 hex chars). */
  readonly value: string
  /** When the lock expires unless extended, in epoch ms; 0 once released or taken over. */
  readonly expiration: number
  /** Releases the lock. Resolves also when it had expired or was released already, and never frees another holder's lock. */
  unlock(): Promise<void>
  /** Makes the lock expire `ttl` ms from now; resolves the handle to use. Rejects with LockError `E_LOCK_EXPIRED` if it is no longer held. */
  extend(ttl?: number): Promise<LockHandle>
  [Symbol.asyncDispose](): Promise<void>
}

export declare class InMemoryLock {
  constructor(options?: CreateOptions)
  readonly namespace: string | undefined
  readonly type: 'inMemory'
  /** Keys with state in this manager's table (held or awaited). */
  readonly size: number
  /** Locks `key` as given. */
  lock(key: string, ttl?: number | LockOptions): Promise<LockHandle>
  /** Locks `${namespace}:${key}`. */
  lockNs(key: string, ttl?: number | LockOptions): Promise<LockHandle>
  /** Whether `key` is held right now. */
  isLocked(key: string): boolean
  /** Releases this manager's locks, rejects its queued lock() calls with DestroyedError. Idempotent. */
  destroy(): Promise<void>
}

export type Lock = InMemoryLock

/** Creates a lock manager. Synchronous; throws on a bad configuration. */
export declare function create(options?: CreateOptions): Lock
/** A promise version of setTimeout. */
export declare function wait(ms: number): Promise<void>

export type LockErrorCode = 'E_LOCK_BUSY' | 'E_LOCK_EXPIRED'

/** Contention outlasted the wait budget (`E_LOCK_BUSY`), or extend() of a lock no longer held (`E_LOCK_EXPIRED`). */
export declare class LockError extends Error {
  readonly name: 'LockError'
  readonly code: LockErrorCode
  /** Attempts made (`retry + 1` for a busy lock, 0 for an expired one). */
  readonly attempts: number
  readonly resource: string
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
}

declare const oxlock: {
  create: typeof create
  wait: typeof wait
  InMemoryLock: typeof InMemoryLock
  LockHandle: typeof LockHandle
  LockError: typeof LockError
  ConfigError: typeof ConfigError
  DestroyedError: typeof DestroyedError
  AbortError: typeof AbortError
}
export default oxlock
