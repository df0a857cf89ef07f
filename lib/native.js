'use strict'

// The native addon and this thread's link to it: the argument array of the in-memory hot
// path, and the promises of calls whose outcome is decided elsewhere (queued in-memory
// waiters, remote requests), by id, with what keeps the process alive while they wait.

const native = require('../binding.js')

const MAX_MS = 2147483647

// Calls waiting on the native side, by id (waiter ids and request ids).
const pending = new Map()

// A queued lock() keeps the process alive, as any pending timer would: every lock has a
// ttl, so the wait always ends. Idle, holding locks, or after destroy(), nothing is ref'd.
// The interval never fires in practice; it only carries the ref.
const keepAlive = setInterval(() => {}, MAX_MS)
keepAlive.unref()

function addPending(id, w) {
  pending.set(id, w)
  if (pending.size === 1) keepAlive.ref()
}

function removePending(id) {
  pending.delete(id)
  if (pending.size === 0) keepAlive.unref()
}

// Set by lib/events.js: what to do with the events drain() returns.
let onEvents = () => {}
function setEventHandler(fn) {
  onEvents = fn
}

// Numbers for the hot native calls go through `args` (see src/napi/memory.rs): filling
// three slots is far cheaper than converting three arguments. Decisions taken off this
// thread arrive through drain(); the wake-up function is weak, so it never keeps the
// process alive.
const { args, context } = native.init(new Float64Array(3), () => onEvents(native.drain(context)))

module.exports = { native, args, context, pending, addPending, removePending, setEventHandler, MAX_MS }
