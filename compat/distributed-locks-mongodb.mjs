// ESM entry of oxlock/distributed-locks-mongodb.
import m from './distributed-locks-mongodb.js'

export const { MongoStorage } = m
