'use strict'

// Lock handles: what lock() resolves. Only this library makes them: a handle made with
// `new` from outside would otherwise name a lock by a guessable id.

const { native, MAX_MS } = require('./native.js')
const { DestroyedError, typeError, expiredError, remoteError } = require('./errors.js')
const { checkTtl } = require('./check.js')
const { schedule } = require('./sockets.js')

const RESOLVED = Promise.resolve()
// using() pins an in-memory lock while its function runs (lib/table.js `pin`).
const PIN = Symbol('oxlock.pin')
const asyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose')

let minting = false

// The ttl an extend() asks for (the manager's default when none), if it may ask at all.
function extendTtl(m, ttl) {
  ttl = ttl === undefined ? m._ttl : checkTtl(ttl)
  if (m._destroyed) throw new DestroyedError()
  return ttl
}

// Events name one key: a multi-resource lock reports each of its keys.
function emitExtended(m, resource, value, expiration) {
  if (m.listenerCount('extended') === 0) return
  for (const r of Array.isArray(resource) ? resource : [resource]) m.emit('extended', { resource: r, value, expiration })
}

function checkMinting() {
  if (!minting) throw typeError('lock handles are made by lock() and lockNs(), not with new', 'E_ILLEGAL_CONSTRUCTOR')
  minting = false
}

/** A held in-memory lock (its manager's `_table` is lib/table.js, or the native table of
 *  `scope: 'process'`: lib/memory.js). */
class LockHandle {
  #manager
  #id
  #held = true
  #value

  constructor(manager, resource, id) {
    checkMinting()
    this.#manager = manager
    this.#id = id
    /** The locked key, exactly as stored (a multi-resource lock: its keys, as given). */
    this.resource = resource
    // In memory, 'lost' is noticed here (remote managers signal it from the core).
    if (id !== 0 && manager.listenerCount('lost') > 0) this.#watchLost()
  }

  // At the lock's expiry: if it was not unlocked (nor extended), it is lost.
  #watchLost() {
    const exp = this.#manager._table.expiration(this.resource, this.#id)
    if (!this.#held) return
    // Gone from the table, or past its expiry (the table may drop it lazily).
    if (exp === 0 || exp <= Date.now()) {
      this.#manager.emit('lost', { resource: this.resource })
      return
    }
    // (Beyond MAX_MS setTimeout fires at once: clamped, it looks again then.)
    setTimeout(() => this.#watchLost(), Math.min(MAX_MS, Math.max(1, exp - Date.now() + 1))).unref()
  }

  /** When the lock expires unless extended, in epoch ms; 0 once released or taken over. */
  get expiration() {
    return this.#held ? this.#manager._table.expiration(this.resource, this.#id) : 0
  }

  /** The lock's unguessable token (32 hex chars). */
  get value() {
    if (this.#value === undefined) this.#value = this.#manager._table.token(this.#id)
    return this.#value
  }

  /** This acquisition's fencing number: greater than every earlier one of the key in this process. */
  get fence() {
    return this.#id
  }

  unlock() {
    if (this.#held) {
      this.#held = false
      this.#manager._table.release(this.resource, this.#id)
    }
    return RESOLVED
  }

  extend(ttl) {
    const m = this.#manager
    try {
      ttl = extendTtl(m, ttl)
    } catch (e) {
      return Promise.reject(e)
    }
    if (this.#held && m._table.extend(this.resource, this.#id, ttl)) {
      emitExtended(m, this.resource, this.value, this.expiration)
      return Promise.resolve(this)
    }
    return Promise.reject(expiredError(this.resource))
  }

  [asyncDispose]() {
    return this.unlock()
  }

  // True if the lock now stays held until unlock() (a table that can pin: lib/table.js).
  [PIN](ttl) {
    const t = this.#manager._table
    return this.#held && typeof t?.pin === 'function' && t.pin(this.resource, this.#id, ttl)
  }
}

/** A held lock on a remote store. */
class RemoteLockHandle extends LockHandle {
  #manager
  #lockId
  #value
  #expiration
  #fence
  #held = true

  constructor(manager, resource, e) {
    minting = true
    super(manager, resource, 0)
    this.#manager = manager
    this.#lockId = e.lockId
    this.#value = e.value
    this.#expiration = e.expiration
    this.#fence = e.fence ?? undefined
    /** Attempts the acquisition took. */
    this.attempts = e.attempts
  }

  /** This acquisition's fencing number, greater than every earlier one of the key (see the README). */
  get fence() {
    return this.#fence
  }

  get value() {
    return this.#value
  }

  get expiration() {
    return this.#held ? this.#expiration : 0
  }

  unlock() {
    if (!this.#held) return RESOLVED
    this.#held = false
    const m = this.#manager
    if (m._destroyed) return RESOLVED // destroy() releases it
    const req = native.remoteUnlock(m._handle, this.#lockId)
    schedule()
    if (req === 0) return RESOLVED // the manager is gone: destroy() released it
    return m._request(req, { unlock: true }, (e, resolve) => resolve())
  }

  extend(ttl) {
    const m = this.#manager
    try {
      ttl = extendTtl(m, ttl)
    } catch (e) {
      return Promise.reject(e)
    }
    const req = this.#held ? native.remoteExtend(m._handle, this.#lockId, ttl) : 0
    schedule()
    // 0: refused without I/O, the lock's validity has passed.
    if (req === 0) return Promise.reject(expiredError(this.resource))
    return m._request(req, {}, (e, resolve, reject) => {
      if (e.kind === 'extended') {
        this.#expiration = e.expiration
        resolve(this)
        emitExtended(m, this.resource, this.#value, e.expiration)
      } else reject(remoteError(e.error, this.resource, m._retry, m.type))
    })
  }
}

function mintLockHandle(manager, resource, id) {
  minting = true
  return new LockHandle(manager, resource, id)
}

function mintRemoteHandle(manager, resource, e) {
  return new RemoteLockHandle(manager, resource, e)
}

module.exports = { LockHandle, mintLockHandle, mintRemoteHandle, RESOLVED, PIN }
