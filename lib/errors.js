'use strict'

// Every error oxlock raises carries a stable `code`. Argument errors are the built-in
// TypeError / RangeError (with a code); the classes below are for everything else.

// `resource` is a string; a multi-resource lock's error names its keys joined by ',' (as
// node-redlock's messages print them) and lists them in `resources`.
function setResource(err, resource) {
  if (Array.isArray(resource)) {
    err.resource = resource.join(',')
    err.resources = resource
  } else err.resource = resource
}

class LockError extends Error {
  constructor(message, { code = 'E_LOCK_BUSY', attempts = 0, resource, cause, causes } = {}) {
    super(message, cause === undefined ? undefined : { cause })
    this.code = code
    this.attempts = attempts
    setResource(this, resource)
    // E_UNAVAILABLE, E_AUTH: why each failing node failed ("host:port: reason").
    if (causes !== undefined) this.causes = causes
  }
}

class ConfigError extends Error {
  constructor(message) {
    super(message)
    this.code = 'E_CONFIG'
  }
}

class DestroyedError extends Error {
  constructor(message = 'the lock manager was destroyed') {
    super(message)
    this.code = 'E_DESTROYED'
  }
}

class AbortError extends Error {
  constructor(resource, reason) {
    super(`The wait for the lock on resource "${resource}" was aborted.`, { cause: reason })
    this.code = 'E_ABORTED'
    setResource(this, resource)
  }
}

for (const E of [LockError, ConfigError, DestroyedError, AbortError]) {
  Object.defineProperty(E.prototype, 'name', { value: E.name, writable: true, configurable: true })
}

function typeError(message, code = 'E_INVALID_ARG', cause) {
  const e = new TypeError(message, cause === undefined ? undefined : { cause })
  e.code = code
  return e
}

function rangeError(message, code = 'E_OUT_OF_RANGE') {
  const e = new RangeError(message)
  e.code = code
  return e
}

// node-redlock's messages, which callers match on.
function busyError(resource, retry, attempts = retry + 1) {
  return new LockError(`Exceeded ${retry} attempts to lock the resource "${resource}".`, {
    code: 'E_LOCK_BUSY',
    attempts,
    resource,
  })
}

function expiredError(resource) {
  return new LockError(
    `Cannot extend lock on resource "${resource}" because the lock has already expired.`,
    { code: 'E_LOCK_EXPIRED', attempts: 0, resource },
  )
}

// What could not be reached, by the manager's type (node-redlock's words for Redis).
const STORES = { redis: 'a quorum of Redis nodes', postgres: 'PostgreSQL' }

// A failure of the store's nodes. `causes` keeps node-redlock-era strings ("host:port: why"),
// `failures` the structured form ({ node, kind, message }).
function nodesError(code, message, resource, e) {
  const failures = e.failures
  const causes = failures.map((f) => `${f.node}: ${f.message}`)
  const why = causes.length > 0 ? `: ${causes.join('; ')}` : ''
  const err = new LockError(message + why, { code, attempts: e.attempts, resource, causes })
  err.failures = failures
  return err
}

// The store could not be reached.
function unavailableError(resource, e, type) {
  const store = STORES[type] ?? 'the store'
  return nodesError('E_UNAVAILABLE', `Unable to reach ${store} for the resource "${resource}" after ${e.attempts} attempts`, resource, e)
}

// The nodes that kept a quorum from forming refused our credentials (a wrong password, an
// ACL user that may not log in) or a command the lock needs (ACL NOPERM): reported at the
// first attempt, since every retry would be refused as well. Never the password.
function authError(resource, e, type) {
  const store = STORES[type] ?? 'the store'
  return nodesError('E_AUTH', `Access was refused by ${store} for the resource "${resource}" (credentials or ACL permissions)`, resource, e)
}

// A failed remote request, as the error the caller sees.
function remoteError(e, resource, retry, type) {
  switch (e.code) {
    case 'E_LOCK_BUSY':
      return busyError(resource, retry, e.attempts)
    case 'E_UNAVAILABLE':
      return unavailableError(resource, e, type)
    case 'E_AUTH':
      return authError(resource, e, type)
    case 'E_CROSSSLOT':
      return nodesError('E_CROSSSLOT', `Cannot lock "${resource}" in one call on a Redis Cluster: ${e.message}`, resource, e)
    case 'E_LOCK_EXPIRED':
      return expiredError(resource)
    case 'E_DESTROYED':
      return new DestroyedError()
    default:
      return new LockError(e.message, { code: e.code, attempts: e.attempts, resource })
  }
}

// Native config errors come back as plain Errors whose code says which class to use.
function fromNative(err) {
  switch (err && err.code) {
    case 'E_CONFIG_TYPE':
      return typeError(err.message, 'E_CONFIG')
    case 'E_CONFIG_RANGE':
      return rangeError(err.message, 'E_CONFIG')
    case 'E_CONFIG':
      return new ConfigError(err.message)
    case 'E_DESTROYED':
      return new DestroyedError(err.message)
    case 'E_UNSUPPORTED':
      return new LockError(err.message, { code: 'E_UNSUPPORTED' })
    default:
      if (err && err.code === undefined) return typeError(`options cannot be read: ${err.message}`, 'E_CONFIG', err)
      return err
  }
}

module.exports = {
  LockError,
  ConfigError,
  DestroyedError,
  AbortError,
  typeError,
  rangeError,
  busyError,
  expiredError,
  unavailableError,
  remoteError,
  fromNative,
}
