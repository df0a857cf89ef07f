import type { Storage } from './distributed-locks'

export declare class RedisStorage implements Storage {
  constructor(options?: { url?: string; keyPrefix?: string; host?: string; port?: number; username?: string; password?: string; db?: number })
  readonly keyPrefix: string
  init(): Promise<void>
  set(key: string, value: string, options: { ttl: number }): Promise<boolean>
  unSet(key: string, value: string): Promise<boolean>
  close(): Promise<void>
}
