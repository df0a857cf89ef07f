'use strict'

// What the drop-in faces (compat/*.js) share: an EventEmitter with one native connection,
// commands that return promises of their `{ ints, strs }`, and the signals the Rust side
// sends by itself (expiries, refreshes, lost locks), routed to the face that owns them.

const { EventEmitter } = require('node:events')
const { native, context, addPending } = require('./native.js')
const { setSignalHandler } = require('./events.js')
const { fromNative, remoteError } = require('./errors.js')

// Faces by the id their signals carry. Removed on close(): a face nobody closes stays
// reachable, as upstream's timers kept theirs.
const faces = new Map()
setSignalHandler((e) => {
  const face = faces.get(e.source)
  if (face !== undefined) face._signal(e.signal, e.key, e.error)
})

class Face extends EventEmitter {
  /** `connection`: `{ host, port, username, password, db, tls }` or a redis:// URL; or what
   * `open(context, connection)` (another store's opener) takes. */
  _open(connection, open = (ctx, c) => native.faceOpen(ctx, c)) {
    let info
    try {
      info = open(context, connection)
    } catch (e) {
      throw fromNative(e)
    }
    this._handle = info.handle
    this._id = info.id
    this._closed = false
    this._inflight = new Set()
    faces.set(info.id, this)
  }

  // Runs a native command (`start(handle)` returns its request id); resolves its event.
  _call(start, resource = '') {
    if (this._closed) return Promise.reject(new Error('the connection was closed'))
    let req
    try {
      req = start(this._handle)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    const p = new Promise((resolve, reject) => {
      addPending(req, { manager: this, settled: false, resolve, reject, resource })
    })
    this._inflight.add(p)
    const done = () => this._inflight.delete(p)
    p.then(done, done)
    return p
  }

  // Called by lib/events.js with a command's outcome.
  _settled(w, e) {
    if (e.kind === 'failed') w.reject(remoteError(e.error, w.resource, 0))
    else w.resolve(e)
  }

  /** Subclasses handle their signals. */
  _signal() {}

  // Stops the face's background work at once, lets the commands already sent finish,
  // then closes the connection. Nothing of the face keeps the process alive afterwards.
  async _close() {
    if (this._closed) return
    this._closed = true
    faces.delete(this._id)
    native.faceStop(this._handle)
    await Promise.allSettled([...this._inflight])
    native.destroy(this._handle)
  }
}

module.exports = { Face }
