'use strict'

// The sockets this thread drives for the native core (src/core/js_io.rs): after each call
// into the addon the core may want a socket opened, bytes written or a socket closed
// (native.takeIo); what a socket reads, or that it closed, goes straight back
// (native.ioData / native.ioClosed), and the requests waiting on it finish right there.
// No reply crosses a thread. Sockets are unref'd: a pending lock() keeps the process alive
// (lib/native.js), an idle connection does not.

const net = require('node:net')
const tls = require('node:tls')
const { native, context, setIoHandler, deliverEvents } = require('./native.js')

const sockets = new Map()
let scheduled = false
// Events an early send (see schedule) found: handed out by the flush at the end of the job.
let eventsOwed = false

// Writes, opens and closes wanted now, and events the core decided meanwhile.
function flush() {
  scheduled = false
  queued = 0
  apply(native.takeIo(context))
  if (eventsOwed) {
    eventsOwed = false
    deliverEvents()
  }
}

// A batch is one Buffer (src/napi/io.rs take_io): u32 words [ops, flags], then [what,
// socket id, bytes] per op, then the bytes of the writes in order.
const HAS_EVENTS = 1
const HAS_OPENS = 2

function apply(batch, holdEvents = false) {
  if (batch == null) return
  const n = batch.readUInt32LE(0)
  const flags = batch.readUInt32LE(4)
  const opens = (flags & HAS_OPENS) !== 0 ? native.takeOpens() : undefined
  let o = 0
  let at = 8 + 12 * n
  for (let p = 8; p < 8 + 12 * n; p += 12) {
    const what = batch.readUInt32LE(p)
    const sid = batch.readUInt32LE(p + 4)
    if (what === 0) {
      const len = batch.readUInt32LE(p + 8)
      // Gone: the core failed what it carried when it heard the socket closed.
      sockets.get(sid)?.write(batch.subarray(at, at + len))
      at += len
    } else if (what === 1) open(sid, opens[o++])
    else {
      const s = sockets.get(sid)
      sockets.delete(sid)
      s?.destroy()
    }
  }
  if ((flags & HAS_EVENTS) === 0) return
  if (holdEvents) eventsOwed = true
  else deliverEvents()
}

// Requests made since the last flush that send at once rather than at the end of the job.
// When a read resolves many requests, their callers' next calls run one after the other in
// this job: sent only at its end, the server would sit idle until then, and this thread
// while the server answers. Sent a few dozen at a time, both work at once (S4: about 1.8×
// the throughput of one write per job; fewer per write costs more writes than it saves).
const EAGER = 32
let queued = 0

// After a call that may have queued I/O: at the end of the current job, so that calls
// made one after the other share one write; or now, every EAGER calls.
function schedule() {
  if (++queued >= EAGER) {
    queued = 0
    // Only the sockets' part: events wait for the flush, since the caller has not yet
    // registered the request it just made, and a listener must not run inside its call.
    apply(native.takeIo(context), true)
  }
  if (scheduled) return
  scheduled = true
  queueMicrotask(flush)
}

function open(sid, o) {
  try {
    connect(sid, o)
  } catch (e) {
    // tls.connect throws at once on a key or certificate it cannot read. The core hears it
    // as it hears any failed connect, after this batch, so the ops after this one still go.
    sockets.get(sid)?.destroy()
    sockets.delete(sid)
    const [kind, message] = describe(e, Boolean(o.tls))
    queueMicrotask(() => apply(native.ioClosed(context, sid, kind, message)))
  }
}

function connect(sid, o) {
  let s
  if (o.tls) {
    const t = o.tls
    s = tls.connect({
      host: o.host,
      port: o.port,
      ca: t.ca ?? undefined,
      cert: t.cert ?? undefined,
      key: t.key ?? undefined,
      rejectUnauthorized: t.rejectUnauthorized,
      servername: t.servername ?? (net.isIP(o.host) ? undefined : o.host),
    })
  } else s = net.connect({ host: o.host, port: o.port })
  sockets.set(sid, s)
  s.setNoDelay(true)
  s.unref()
  let failure
  let secured = !o.tls
  const connected = () => {
    secured = true
    s.setTimeout(0)
  }
  s.setTimeout(o.connectMs, () => {
    if (!secured) s.destroy(Object.assign(new Error(`not connected within ${o.connectMs} ms`), { code: 'ETIMEDOUT' }))
  })
  s.once(o.tls ? 'secureConnect' : 'connect', connected)
  s.on('data', (bytes) => {
    apply(native.ioData(context, sid, bytes))
  })
  s.on('error', (e) => {
    failure ??= e
  })
  s.on('close', () => {
    // Not ours any more: the core closed it and forgot it.
    if (sockets.get(sid) !== s) return
    sockets.delete(sid)
    const [kind, message] = describe(failure, o.tls && !secured)
    apply(native.ioClosed(context, sid, kind, message))
  })
}

// The core's kind of failure (src/core/error.rs CauseKind) and words for it.
function describe(e, handshaking) {
  if (e === undefined) return ['closed', 'connection closed by the server']
  const code = String(e.code ?? '')
  if (code === 'ECONNREFUSED') return ['refused', 'connection refused']
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return ['dns', `lookup failed (${code})`]
  if (code === 'ETIMEDOUT') return ['timeout', e.message]
  if (handshaking || /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED)/.test(code)) {
    return ['tls', `${e.message}${code ? ` (${code})` : ''}`]
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') return ['closed', 'connection lost']
  return ['io', e.message]
}

setIoHandler(flush)

module.exports = { schedule, flush }
