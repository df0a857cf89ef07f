// ESM entry of oxlock/distributed-locks-postgresql.
import m from './distributed-locks-postgresql.js'

export const { PostgresqlStorage } = m
