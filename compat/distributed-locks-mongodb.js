'use strict'

// require('oxlock/distributed-locks-mongodb'): not built yet (see compat/unsupported.js).
const { MongoStorage } = require('./distributed-locks.js')

module.exports = { MongoStorage }
