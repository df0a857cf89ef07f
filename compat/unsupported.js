'use strict'

// Stores of the drop-in entry points that are not built yet: a clear error, never a
// pretend success.
function unsupported(what) {
  const e = new Error(`${what} is not supported by oxlock yet (PostgreSQL and MongoDB stores are planned); use RedisStorage or your own storage object`)
  e.code = 'E_UNSUPPORTED'
  return e
}

module.exports = { unsupported }
