'use strict'

// Delivers what the native side decided off this thread to the promises waiting for it:
// grants and timeouts of queued in-memory lock() calls, and outcomes of remote requests.

const { native, args, pending, removePending, setEventHandler } = require('./native.js')

function take(id) {
  const w = pending.get(id)
  if (w === undefined) return undefined
  removePending(id)
  forget(w)
  return w
}

function forget(w) {
  if (w.signal !== undefined) w.signal.removeEventListener('abort', w.onAbort)
}

// An in-memory waiter holds the key now.
function grant(id) {
  const w = take(id)
  if (w === undefined) return
  if (w.settled) {
    // Aborted while the grant was on its way: give the key straight back.
    args[0] = w.manager._handle
    args[1] = id
    const next = native.release()
    if (next !== 0) grant(next)
    return
  }
  w.manager._granted(w, id)
}

// Set by lib/face.js: where the drop-in faces' own signals go.
let onSignal = () => {}
function setSignalHandler(fn) {
  onSignal = fn
}

// Managers' signals (`lost`, `error`, `reconnect`), by the id they carry. Weak: a manager
// nobody destroys can still be collected (its finalizer destroys it).
const managers = new Map()
function addManagerSignals(id, manager) {
  managers.set(id, new WeakRef(manager))
}
function removeManagerSignals(id) {
  managers.delete(id)
}

// drain()'s events, packed (src/napi/events.rs `pack`): a u32 count, then per event f64s
// [kind, id, ...], or for the rarer kinds the next object of drainObjects().
const GRANTED = 0
const TIMED_OUT = 1
const LOCKED = 2
const EXTENDED = 3
const DONE = 4

function unpack(b) {
  const n = b.readUInt32LE(0)
  const events = new Array(n)
  let objects
  let o = 0
  let p = 4
  for (let i = 0; i < n; i++) {
    const kind = b.readDoubleLE(p)
    const id = b.readDoubleLE(p + 8)
    p += 16
    if (kind === GRANTED) events[i] = { kind: 'granted', id }
    else if (kind === TIMED_OUT) events[i] = { kind: 'timedOut', id }
    else if (kind === LOCKED) {
      const fence = b.readDoubleLE(p + 24)
      const len = b.readDoubleLE(p + 32)
      const at = p + 40
      events[i] = {
        kind: 'locked',
        id,
        lockId: b.readDoubleLE(p),
        value: b.toString('utf8', at, at + len),
        expiration: b.readDoubleLE(p + 8),
        attempts: b.readDoubleLE(p + 16),
        fence: Number.isNaN(fence) ? undefined : fence,
      }
      p = at + len
    } else if (kind === EXTENDED) {
      events[i] = { kind: 'extended', id, expiration: b.readDoubleLE(p) }
      p += 8
    } else if (kind === DONE) events[i] = { kind: 'done', id }
    else {
      objects ??= native.drainObjects()
      events[i] = objects[o++]
    }
  }
  return events
}

function deliver(packed) {
  if (packed == null) return
  const events = unpack(packed)
  // One event's failure (a listener that throws) must not lose the others, already drained.
  let failure
  for (const e of events) {
    try {
      deliverOne(e)
    } catch (err) {
      if (failure === undefined) failure = err
    }
  }
  if (failure !== undefined) throw failure
}

function deliverOne(e) {
  if (e.kind === 'granted') grant(e.id)
  else if (e.kind === 'signal') {
    const m = managers.get(e.source)?.deref()
    if (m !== undefined) m._signal(e.signal, e.key, e.error)
    else onSignal(e)
  }
  else {
    const w = take(e.id)
    // Unknown: an aborted request (the native side gives back what it took).
    if (w !== undefined && !w.settled) w.manager._settled(w, e)
  }
}

setEventHandler(deliver)

module.exports = { grant, forget, take, setSignalHandler, addManagerSignals, removeManagerSignals }
