export { MongoStorage, type MongoStorageOptions } from './distributed-locks'
