'use strict'

// `lock.using(key, fn, options)`: the lock is held while `fn(signal, handle)` runs and
// released when it settles. It is extended automatically, half a ttl before it would
// expire, within `maxHoldMs` (total) and `maxExtensions`; when it is lost, cannot be
// extended in time, or a bound is reached, `signal` aborts with a LockError `E_LOCK_LOST`
// no later than `margin` ms before the lock's validity ends, so `fn` can stop while it
// still holds the lock. Its timers keep the process alive while fn runs, as fn would. (In
// memory with no bound there are none: the table holds the lock until the release, and
// what fn awaits keeps the process alive, as it would without a lock.)

const { LockError, busyError, typeError, rangeError } = require('./errors.js')
const { BareCall, runPinned, deferred, settle } = require('./waiter.js')
const { describe, checkTtl, checkSignal } = require('./check.js')
const { PIN } = require('./handle.js')

/** The margin before the end of the validity at which the signal aborts at the latest. */
const marginOf = (ttl) => Math.max(20, Math.min(1000, Math.ceil(ttl / 10)))

function lostError(resource, why, cause) {
  return new LockError(`The lock on resource "${resource}" ${why}.`, { code: 'E_LOCK_LOST', resource, cause })
}

function checkBound(name, v) {
  if (typeof v !== 'number') throw typeError(`${name} must be a number, got ${describe(v)}`)
  if (!(v >= 0)) throw rangeError(`${name} must be >= 0, got ${v}`)
  return v
}

// (Field by field, with no destructuring defaults or arrays to loop over: every using() call
// reads its options, and in memory that cost showed next to the lock itself.)
function readOptions(manager, options) {
  if (options === undefined || options === null) return { ttl: manager._ttl, maxHoldMs: Infinity, maxExtensions: Infinity, signal: undefined }
  if (typeof options !== 'object') throw typeError(`using() options must be an object, got ${describe(options)}`)
  const { ttl, maxHoldMs, maxExtensions, signal } = options
  const o = { ttl: ttl === undefined ? manager._ttl : checkTtl(ttl), maxHoldMs: Infinity, maxExtensions: Infinity, signal }
  checkSignal(signal)
  if (maxHoldMs !== undefined) o.maxHoldMs = checkBound('maxHoldMs', maxHoldMs)
  if (maxExtensions !== undefined) o.maxExtensions = checkBound('maxExtensions', maxExtensions)
  return o
}

// Whether `fn` cannot see its arguments: an arrow function with an empty parameter list.
// Node 20 creates a controller's AbortSignal when `.signal` is first read, and that costs
// about 3 µs, ten times a whole in-memory lock cycle: such an `fn` gets none. (Anything else,
// `function` included (it has `arguments`), gets the signal.)
// The last function asked about (kept until the next call): a loop that passes the same
// function asks once. (A WeakMap cost more than the check for the fresh closure of each
// call, and kept the GC busy.)
let lastFn
let lastAnswer = false
function takesNoArgs(fn) {
  if (fn.length !== 0) return false
  if (fn !== lastFn) {
    lastAnswer = isBareArrow(Function.prototype.toString.call(fn))
    lastFn = fn
  }
  return lastAnswer
}

// /^(?:async\s*)?\(\s*\)\s*=>/ by hand: a fresh closure per call (`() => work(x)`) is
// asked about every time, and the regular expression cost twice this scan.
const isSpace = (c) => c === 32 || (c >= 9 && c <= 13)
function isBareArrow(src) {
  let i = 0
  if (src.startsWith('async')) {
    i = 5
    while (isSpace(src.charCodeAt(i))) i++
  }
  if (src.charCodeAt(i++) !== 40) return false // (
  while (isSpace(src.charCodeAt(i))) i++
  if (src.charCodeAt(i++) !== 41) return false // )
  while (isSpace(src.charCodeAt(i))) i++
  return src.charCodeAt(i) === 61 && src.charCodeAt(i + 1) === 62 // =>
}

function using(manager, key, fn, options, lockNs) {
  let o
  try {
    if (typeof fn !== 'function') throw typeError(`using() needs a function, got ${describe(fn)}`)
    o = readOptions(manager, options)
  } catch (e) {
    return Promise.reject(e)
  }
  const fast = o.signal === undefined && o.maxHoldMs === Infinity && o.maxExtensions === Infinity && typeof key === 'string'
  // (usingNs() with no namespace takes the general path, whose lockNs() says so.)
  if (fast && manager._jsTable && !manager._destroyed && (!lockNs || manager.namespace !== undefined) && takesNoArgs(fn)) {
    return usingBare(manager, lockNs ? `${manager.namespace}:${key}` : key, fn, o.ttl)
  }
  return usingLock(manager, key, fn, o, lockNs)
}

// The in-memory fast path: no bound, no caller signal and an `fn` that sees no arguments
// (so neither a signal nor a handle to make). A free key is taken now and pinned for the
// call; a held one queues a `BareCall` in the key's FIFO, as lock() would queue a waiter.
// Either way `fn` runs a microtask after the key is ours (never before using() returned)
// and the key is released when `fn` settles; nothing else of ours is made.
function usingBare(manager, key, fn, ttl) {
  const table = manager._table
  const id = table.take(key, ttl, true)
  if (id > 0) return runPinned(table, key, id, fn)
  if (id === 0) return Promise.reject(busyError(key, manager._retry))
  const p = deferred()
  table.enqueue(key, new BareCall(manager, key, ttl, fn, settle.resolve, settle.reject))
  return p
}

async function usingLock(manager, key, fn, o, lockNs) {
  const handle = await (lockNs ? manager.lockNs(key, { ttl: o.ttl, signal: o.signal }) : manager.lock(key, { ttl: o.ttl, signal: o.signal }))
  return usingHeld(manager, handle, fn, o)
}

// fn runs holding `handle`: renewed, bounded and watched as the top of this file says.
async function usingHeld(manager, handle, fn, o) {
  const started = Date.now()
  const controller = new AbortController()
  const margin = marginOf(o.ttl)
  let extensions = 0
  let done = false
  let aborted = false // (read instead of controller.signal.aborted: see takesNoArgs)
  let renewTimer
  let lostTimer
  const lose = (why, cause) => {
    if (done || aborted) return
    aborted = true
    clearTimeout(renewTimer)
    clearTimeout(lostTimer)
    controller.abort(lostError(handle.resource, why, cause))
  }
  const onCallerAbort = () => {
    aborted = true
    controller.abort(o.signal.reason)
  }
  if (o.signal !== undefined) o.signal.addEventListener('abort', onCallerAbort, { once: true })
  // For the current validity: a renewal half a ttl before its end, and, should that not
  // succeed in time, the loss `margin` ms before its end.
  const arm = () => {
    const left = handle.expiration - Date.now()
    lostTimer = setTimeout(() => lose('could not be extended before its validity ended'), Math.max(0, left - margin))
    const holdLeft = started + o.maxHoldMs - Date.now()
    // An extension must reach past this validity by more than the margin to be of use.
    if (extensions >= o.maxExtensions || holdLeft <= left + margin) {
      // No more extensions: the bound is reached when this validity ends.
      clearTimeout(lostTimer)
      const why = extensions >= o.maxExtensions ? `reached maxExtensions (${o.maxExtensions})` : `reached maxHoldMs (${o.maxHoldMs} ms)`
      lostTimer = setTimeout(() => lose(why), Math.max(0, left - margin))
      return
    }
    renewTimer = setTimeout(renew, Math.max(0, left - o.ttl / 2))
  }
  const renew = async () => {
    const ttl = Math.min(o.ttl, Math.max(1, Math.floor(started + o.maxHoldMs - Date.now())))
    try {
      await handle.extend(ttl)
    } catch (e) {
      if (e && e.code === 'E_LOCK_EXPIRED') lose('was lost (it expired or was taken)', e)
      // Otherwise (unreachable, slow) the loss timer decides, before the validity ends.
      return
    }
    if (done || aborted) return
    extensions++
    clearTimeout(lostTimer)
    arm()
  }
  // In memory with no bound nothing can end the lock while fn runs: the table holds it
  // until the release (no timers). Elsewhere, renewals and the loss deadline as above.
  const pinned = o.maxHoldMs === Infinity && o.maxExtensions === Infinity && typeof handle[PIN] === 'function' && handle[PIN](o.ttl)
  // destroy() ends a pinned lock: no renewal is there to find out (lib/memory.js).
  const onDestroy = () => lose('was released by destroy()')
  if (pinned) manager._pinned.add(onDestroy)
  else arm()
  try {
    return await (takesNoArgs(fn) ? fn() : fn(controller.signal, handle))
  } finally {
    done = true
    if (pinned) manager._pinned.delete(onDestroy)
    clearTimeout(renewTimer)
    clearTimeout(lostTimer)
    if (o.signal !== undefined) o.signal.removeEventListener('abort', onCallerAbort)
    // unlock() never rejects; an error of fn is never hidden by the release.
    await handle.unlock().catch(() => {})
  }
}

module.exports = { using, marginOf }
