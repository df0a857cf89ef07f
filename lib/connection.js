'use strict'

// The connection a drop-in face opens, from what its users pass today: a redis:// URL, an
// options object ({ host, port, username, password, db | database, tls, url }), or a
// client object (ioredis: `client.options`; node-redis v4: `client.options.socket` / `url`)
// whose settings are read. oxlock opens its own native connection and never calls the
// client's methods.

const { typeError } = require('./errors.js')

const pickTls = (t) => {
  if (t === undefined || t === null || t === false) return undefined
  if (t === true) return true
  const out = {}
  for (const f of ['ca', 'cert', 'key', 'rejectUnauthorized']) if (t[f] !== undefined) out[f] = Array.isArray(t[f]) ? t[f].join('\n') : t[f]
  return out
}

function fromOptions(o, what) {
  if (typeof o.url === 'string') return o.url
  const socket = o.socket && typeof o.socket === 'object' ? o.socket : {}
  const out = {}
  const host = o.host ?? socket.host
  const port = o.port ?? socket.port
  const db = o.db ?? o.database
  if (host !== undefined) out.host = host
  if (port !== undefined) out.port = typeof port === 'string' ? Number(port) : port
  if (o.username !== undefined && o.username !== null) out.username = o.username
  if (o.password !== undefined && o.password !== null) out.password = o.password
  if (db !== undefined && db !== null) out.db = Number(db)
  const tls = pickTls(o.tls ?? socket.tls)
  if (tls !== undefined) out.tls = tls
  if (out.port !== undefined && !Number.isFinite(out.port)) throw typeError(`${what}.port must be a number`, 'E_CONFIG')
  return out
}

/** The native connection config for `x`, named `what` in messages. */
function connectionOf(x, what) {
  if (x === undefined || x === null) return {}
  if (typeof x === 'string') return x
  if (typeof x !== 'object') throw typeError(`${what} must be a redis:// URL, an options object or a client, got ${typeof x}`, 'E_CONFIG')
  // A client (ioredis, node-redis): its settings.
  if (typeof x.set === 'function' && x.options && typeof x.options === 'object') return fromOptions(x.options, `${what}.options`)
  return fromOptions(x, what)
}

module.exports = { connectionOf }
