export { MongoStorage } from './distributed-locks'
