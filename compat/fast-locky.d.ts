import { EventEmitter } from 'node:events'

/** A redis:// URL, `{ host, port, username, password, db | database, tls }`, or a factory returning a client whose settings are read. */
export type LockyRedis = string | { host?: string; port?: number; username?: string; password?: string; db?: number; database?: number; tls?: unknown } | (() => unknown)

export interface LockyOptions {
  redis?: LockyRedis
  /** Lock ttl in ms, applied at lock() time; null: no expiry, no expiry watch. */
  ttl?: number | null
  /** Key prefix segment: keys are `[name:]lock:resource:<resource>`. */
  name?: string
  /** The tracking set. Default `[name:]lock:currents`. */
  set?: string
}

export interface LockyItem {
  resource: string | number
  locker: string | number
}

/** fast-locky's Locky, on oxlock's core. Events: lock(resource, locker), unlock(resource), extend(resource), expire(resource), error(err). */
declare class Locky extends EventEmitter {
  constructor(options?: LockyOptions)
  readonly ttl: number | null
  readonly set: string
  readonly redis: object
  readonly formatter: { getKey(resource: string | number): string; getResource(key: string): string }
  lock(collection: Iterable<LockyItem>, force?: boolean): Promise<true | undefined>
  unlock(resources: Iterable<string | number>): Promise<true | undefined>
  extend(resources: Iterable<string | number>): Promise<true | undefined>
  getLockers(resources: Iterable<string | number>): Promise<(string | null)[] | undefined>
  getLocker(resources: Iterable<string | number>): Promise<(string | null)[] | undefined>
  getLocks(): Promise<string[] | undefined>
  expireLocks(lockKeys: Iterable<string>): Promise<undefined>
  error(err: Error): void
  close(): Promise<void>
}

export = Locky
