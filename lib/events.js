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

function deliver(events) {
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
