'use strict'

// How the CLI prints: aligned tables, durations, token prefixes, and colour only on a TTY
// (and never with NO_COLOR set).

const TOKEN_SHOWN = 8

function colours(stream, env = process.env) {
  const on = Boolean(stream.isTTY) && !('NO_COLOR' in env) && env.TERM !== 'dumb'
  const wrap = (code) => (s) => (on ? `\x1b[${code}m${s}\x1b[0m` : String(s))
  return { bold: wrap(1), dim: wrap(2), red: wrap(31), green: wrap(32), yellow: wrap(33), cyan: wrap(36) }
}

function duration(ms) {
  if (ms === null || ms === undefined) return '-'
  if (ms < 1000) return `${ms}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}s`
  return `${Math.floor(ms / 3_600_000)}h${String(Math.floor(ms / 60_000) % 60).padStart(2, '0')}m`
}

function tokenPrefix(token) {
  if (token === null || token === undefined) return '-'
  return token.length > TOKEN_SHOWN ? `${token.slice(0, TOKEN_SHOWN)}…` : token
}

/** Rows of cells as aligned text; `paint[i]` colours column i after padding. */
function table(header, rows, paint = []) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const line = (cells, p) =>
    cells
      .map((c, i) => {
        const s = String(c).padEnd(widths[i])
        return p && p[i] ? p[i](s) : s
      })
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map((r) => line(r, paint))].join('\n')
}

function lockRows(locks) {
  return locks.map((l) => [
    l.key,
    duration(l.ttlMs),
    tokenPrefix(l.token),
    l.fence === null ? '-' : String(l.fence),
    `${l.heldOn}/${l.nodes}`,
    l.waitedFor ? 'yes' : '',
  ])
}

const LOCK_HEADER = ['KEY', 'TTL', 'TOKEN', 'FENCE', 'NODES', 'WAITED']

function lockTable(locks, c) {
  if (locks.length === 0) return c.dim('no locks held')
  return table(LOCK_HEADER, lockRows(locks), [c.bold, c.green, null, c.cyan])
}

module.exports = { colours, duration, tokenPrefix, table, lockTable }
