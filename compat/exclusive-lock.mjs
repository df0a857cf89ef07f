// ESM entry of oxlock/exclusive-lock: the ExclusiveLock class.
import ExclusiveLock from './exclusive-lock.js'

export default ExclusiveLock
