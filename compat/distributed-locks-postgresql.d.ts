export { PostgresqlStorage } from './distributed-locks'
