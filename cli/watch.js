'use strict'

// `oxlock watch`: lists the locks again whenever the store tells of a change (Redis
// keyspace notifications, when the server sends them) and at least every `interval` ms,
// and reports what changed between two lists: a lock taken, extended, released or expired.
// On a TTY it redraws the table; otherwise it prints one line (or JSON object) per event.

const { lockTable, duration, tokenPrefix } = require('./format.js')

// A lock gone within this much of its expiry is counted as expired, not released.
const EXPIRY_SLACK_MS = 150

/** What changed from list `before` (taken at `then`) to `now`'s list (taken at `at`). */
function diff(before, then, now, at) {
  const events = []
  const current = new Map(now.map((l) => [l.key, l]))
  // What went first: a key released and taken again between two looks reads in that order.
  for (const p of before) {
    const l = current.get(p.key)
    if (l && l.token === p.token) continue
    const expired = at - then >= p.ttlMs - EXPIRY_SLACK_MS
    events.push({ event: expired ? 'expired' : 'released', key: p.key, token: p.token, fence: p.fence })
  }
  const old = new Map(before.map((l) => [l.key, l]))
  for (const l of now) {
    const p = old.get(l.key)
    if (!p || p.token !== l.token) events.push({ event: 'locked', ...l })
    else if (l.ttlMs > p.ttlMs - (at - then) + EXPIRY_SLACK_MS) events.push({ event: 'extended', ...l })
  }
  return events
}

function eventLine(e, c) {
  const time = new Date().toISOString().slice(11, 23)
  const paint = { locked: c.green, extended: c.cyan, released: c.yellow, expired: c.red }[e.event]
  const detail = e.event === 'locked' || e.event === 'extended' ? `  ttl ${duration(e.ttlMs)}` : ''
  const fence = e.fence === null || e.fence === undefined ? '' : `  fence ${e.fence}`
  return `${c.dim(time)}  ${paint(e.event.padEnd(8))}  ${e.key}  token ${tokenPrefix(e.token)}${fence}${detail}`
}

/** Runs until `signal` aborts; writes to `out`. */
async function watch(store, { pattern, interval, limit, json, live, c, out, signal }) {
  const notified = await store.notifies(pattern)
  const how = notified ? 'keyspace notifications' : `polling every ${interval} ms`
  if (!live && !json) out.write(`${c.dim(`watching ${pattern} (${how}); Ctrl-C to stop`)}\n`)
  let seen = 0
  let before = null
  let then = 0
  while (!signal.aborted) {
    const at = Date.now()
    const { value: locks, failures } = await store.list(pattern, limit)
    if (live) {
      const head = c.bold(`oxlock watch ${pattern}`) + c.dim(`  (${how}; ${new Date().toISOString().slice(11, 19)}; Ctrl-C to stop)`)
      const warn = failures.map((f) => c.red(`unreachable: ${f}`)).join('\n')
      out.write(`\x1b[H\x1b[2J${head}\n\n${lockTable(locks, c)}\n${warn ? `\n${warn}\n` : ''}`)
    } else if (before !== null) {
      for (const e of diff(before, then, locks, at)) out.write(json ? `${JSON.stringify(e)}\n` : `${eventLine(e, c)}\n`)
    }
    before = locks
    then = at
    seen = await store.changed(seen, interval)
  }
}

module.exports = { watch, diff }
