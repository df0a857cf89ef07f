'use strict'

// require('oxlock/distributed-locks-postgresql'): not built yet (see compat/unsupported.js).
const { PostgresqlStorage } = require('./distributed-locks.js')

module.exports = { PostgresqlStorage }
