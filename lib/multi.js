'use strict'

// A multi-resource lock in memory: every key, or none. The keys are taken one after the
// other in one canonical order (sorted, repeats dropped), so two callers locking [a, b] and
// [b, a] queue in the same order and cannot deadlock; a key that cannot be had in the wait
// budget (or an abort) gives back those already taken. (Remote stores take all keys in one
// attempt instead: src/remote/lock_all.rs.)

const { busyError, AbortError, DestroyedError, LockError } = require('./errors.js')

const asyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose')

/** A held multi-resource lock: one handle per key, released and extended together. */
class MultiLockHandle {
  #handles

  constructor(resource, handles) {
    this.#handles = handles
    /** The locked keys, as given. */
    this.resource = resource
  }

  /** The earliest expiry of its keys, in epoch ms; 0 once released. */
  get expiration() {
    let min = Infinity
    for (const h of this.#handles) min = Math.min(min, h.expiration)
    return min === Infinity ? 0 : min
  }

  /** The token of its first key (each key has its own). */
  get value() {
    return this.#handles[0].value
  }

  /** Greater than every earlier fence of each of its keys (lock ids only grow). */
  get fence() {
    return Math.max(...this.#handles.map((h) => h.fence))
  }

  unlock() {
    for (const h of this.#handles) h.unlock()
    return Promise.resolve()
  }

  /** Extends every key; rejects (E_LOCK_EXPIRED) if any of them has expired. */
  async extend(ttl) {
    await Promise.all(this.#handles.map((h) => h.extend(ttl)))
    return this
  }

  [asyncDispose]() {
    return this.unlock()
  }
}

async function lockAll(manager, keys, ttl, signal) {
  const order = [...new Set(keys)].sort()
  const handles = []
  try {
    for (const key of order) {
      // Between two keys: an abort or a destroy() that came while the last one was awaited.
      if (manager._destroyed) throw new DestroyedError()
      if (signal !== undefined && signal.aborted) throw new AbortError(keys, signal.reason)
      handles.push(await manager._acquire(key, ttl, signal))
    }
    // A key taken early may have expired while a later one was awaited: not held at all.
    const now = Date.now()
    if (handles.some((h) => h.expiration <= now)) throw busyError(keys, manager._retry)
  } catch (e) {
    for (const h of handles) h.unlock()
    // Errors name every key (one key's wait failed, the lock of all of them did).
    if (e instanceof AbortError) throw new AbortError(keys, e.cause)
    if (e instanceof LockError && e.code === 'E_LOCK_BUSY') throw busyError(keys, manager._retry, e.attempts)
    throw e
  }
  return new MultiLockHandle(keys, handles)
}

module.exports = { lockAll, MultiLockHandle }
