import type { Storage } from './distributed-locks'

/** distributed-locks-postgresql's storage on upstream's table: `<tableName>(key varchar(50), value varchar(100), ttl integer, obtained_at timestamp)`. */
export declare class PostgresqlStorage implements Storage {
  constructor(options?: {
    host?: string
    port?: number
    database?: string
    username?: string
    password?: string
    /** Default 'distributed-locks': rows' keys are `<keyPrefix>:<key>`, 50 characters at most. */
    keyPrefix?: string
    /** Default 'locks'. */
    tableName?: string
    /** A postgres:// URL instead of the fields. */
    url?: string
    /** TLS: `true` or `{ ca, cert, key, rejectUnauthorized }`. */
    ssl?: boolean | { ca?: string | Uint8Array; cert?: string | Uint8Array; key?: string | Uint8Array; rejectUnauthorized?: boolean }
  })
  readonly keyPrefix: string
  readonly tableName: string
  /** Creates the table if it is absent. */
  init(): Promise<void>
  set(key: string, value: string, options: { ttl: number }): Promise<boolean>
  unSet(key: string, value: string): Promise<boolean>
  close(): Promise<void>
}
