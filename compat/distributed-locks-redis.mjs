// ESM entry of oxlock/distributed-locks-redis.
import m from './distributed-locks-redis.js'

export const { RedisStorage } = m
