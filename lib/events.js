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

// drain()'s events, packed (src/napi/events.rs `pack`): f64s, the count, then per event
// [kind, id, ...], or for the rarer kinds the next object of drainObjects().
const GRANTED = 0
const TIMED_OUT = 1
const LOCKED = 2
const EXTENDED = 3
const DONE = 4

// A Float64Array reads in the host's byte order; the pack is little-endian.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function words(b) {
  if (!LITTLE_ENDIAN) return Array.from({ length: b.length / 8 }, (_, i) => b.readDoubleLE(i * 8))
  // (A fresh buffer starts at offset 0; one that did not would be copied to one that does.)
  return b.byteOffset % 8 === 0 ? new Float64Array(b.buffer, b.byteOffset, b.length / 8) : new Float64Array(new Uint8Array(b).buffer)
}

function unpack(b) {
  const f = words(b)
  const n = f[0]
  const events = new Array(n)
  let objects
  let o = 0
  let w = 1 // the next f64
  for (let i = 0; i < n; i++) {
    const kind = f[w]
    const id = f[w + 1]
    w += 2
    if (kind === GRANTED) events[i] = { kind: 'granted', id }
    else if (kind === TIMED_OUT) events[i] = { kind: 'timedOut', id }
    else if (kind === LOCKED) {
      const fence = f[w + 3]
      const len = f[w + 4]
      const at = (w + 5) * 8
      events[i] = {
        kind: 'locked',
        id,
        lockId: f[w],
        value: b.toString('latin1', at, at + len),
        expiration: f[w + 1],
        attempts: f[w + 2],
        fence: Number.isNaN(fence) ? undefined : fence,
      }
      w += 5 + Math.ceil(len / 8)
    } else if (kind === EXTENDED) {
      events[i] = { kind: 'extended', id, expiration: f[w] }
      w += 1
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
