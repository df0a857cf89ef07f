'use strict'

// What waits in a key's FIFO of the JS table (lib/table.js): a lock() (`Waiter`, granted a
// handle), or an argument-less using() of the fast path (`BareCall`, which runs its function
// when the key comes to it and makes nothing else).

const { mintLockHandle, RESOLVED } = require('./handle.js')
const { DestroyedError, busyError } = require('./errors.js')

// A new pending promise whose resolve and reject functions are left in `settle`, to be taken
// at once: one shared executor instead of a closure (and its context) per waiter, which a
// contended key makes for every lock() and the garbage collector then has to sweep.
const settle = { resolve: undefined, reject: undefined }
const capture = (resolve, reject) => {
  settle.resolve = resolve
  settle.reject = reject
}
const deferred = () => new Promise(capture)

/** A lock() waiting in the JS table: what the table calls when it ends. */
class Waiter {
  constructor(manager, key, ttl, resolve, reject, signal) {
    this.manager = manager
    this.key = key
    this.ttl = ttl
    this.resolve = resolve
    this.reject = reject
    this.signal = signal
    this.onAbort = undefined
    this.pins = false // pinned from its grant on (BareCall)
    // The table's fields (lib/table.js).
    this.prev = null
    this.next = null
    this.gone = false
    this.deadline = undefined
  }

  #forget() {
    if (this.signal !== undefined) this.signal.removeEventListener('abort', this.onAbort)
  }

  granted(id) {
    this.#forget()
    this.resolve(mintLockHandle(this.manager, this.key, id))
  }

  timedOut() {
    this.#forget()
    this.reject(busyError(this.key, this.manager._retry))
  }

  destroyed() {
    this.#forget()
    this.reject(new DestroyedError())
  }
}

/** Runs `fn` a microtask from now holding `id`'s lock on `key`, pinned already (taken
 *  pinned, or handed on to a waiter that `pins`), and releases the key when `fn` settles.
 *  The result settles the promise returned, or, given `done` and `failed`, goes to them. */
function runPinned(table, key, id, fn, done, failed) {
  // One reaction when `fn` returns at once (released right there); a promise or thenable it
  // returns is released when that settles.
  return RESOLVED.then(() => {
    let r
    try {
      r = fn()
      if (r === null || (typeof r !== 'object' && typeof r !== 'function') || typeof r.then !== 'function') {
        table.release(key, id)
        return done === undefined ? r : done(r)
      }
    } catch (e) {
      table.release(key, id)
      if (done === undefined) throw e
      return failed(e)
    }
    const settled = Promise.resolve(r).then(
      (v) => {
        table.release(key, id)
        return done === undefined ? v : done(v)
      },
      (e) => {
        table.release(key, id)
        if (done === undefined) throw e
        return failed(e)
      },
    )
    // With `done`, nobody awaits this promise: not handing it back saves adopting it.
    return done === undefined ? settled : undefined
  })
}

/** An argument-less using() waiting in the JS table: it holds the key only while its
 *  function runs, with no handle, signal or timer. */
class BareCall extends Waiter {
  constructor(manager, key, ttl, fn, resolve, reject) {
    super(manager, key, ttl, resolve, reject, undefined)
    this.fn = fn
    this.pins = true
  }

  // Called inside the previous holder's release: `fn` runs later, not in there.
  granted(id) {
    runPinned(this.manager._table, this.key, id, this.fn, this.resolve, this.reject)
  }
}

module.exports = { Waiter, BareCall, runPinned, deferred, settle }
