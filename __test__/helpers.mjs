// Shared helpers for the oxlock test suite (not a test file: node --test only picks *.test.mjs).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { setImmediate as immediate } from 'node:timers/promises'

export const MAX_MS = 2147483647

/** Milliseconds since `t0` (Date.now-based, good to ~1 ms). */
export const since = (t0) => Date.now() - t0

/**
 * Asserts `h.expiration` is `ttl` ms after a moment between `t0` (taken just before the
 * lock()/extend() call) and now: exact up to rounding, whatever the scheduler did.
 */
export function assertExpiresIn(h, ttl, t0, what = h.resource) {
  const t1 = Date.now()
  const e = h.expiration
  assert.ok(
    e >= t0 + ttl - 2 && e <= t1 + ttl + 2,
    `${what}: expiration should be ${ttl} ms after the call, got t0 + ${e - t0} ms (${t1 - t0} ms elapsed since t0)`,
  )
}

/** Promise state without waiting on it: 'pending', or { ok: value } / { err: error }. */
export async function state(promise) {
  const probe = {}
  const r = await Promise.race([
    promise.then(
      (v) => ({ ok: v }),
      (e) => ({ err: e }),
    ),
    // One macrotask turn: enough for an already settled promise (and its reactions) to win.
    immediate().then(() => probe),
  ])
  return r === probe ? 'pending' : r
}

/** Asserts the promise settled already (before the next macrotask) and returns its error. */
export async function rejectsAtOnce(promise) {
  const s = await state(promise)
  assert.notEqual(s, 'pending', 'expected the promise to be rejected at once, it is still pending')
  assert.ok('err' in s, `expected a rejection, got a fulfilment with ${s.ok}`)
  return s.err
}

/** Asserts the promise is still pending after one macrotask turn. */
export async function assertPending(promise, what = 'promise') {
  const s = await state(promise)
  assert.equal(s, 'pending', `${what} should still be pending, got ${s === 'pending' ? s : JSON.stringify(Object.keys(s))}`)
}

/**
 * Checks an error's class, name and code (and optionally its message: string = exact,
 * RegExp = match, function = predicate).
 */
export function checkError(err, Class, code, message) {
  assert.ok(err instanceof Class, `expected ${Class.name}, got ${err && err.constructor && err.constructor.name}: ${err && err.message}`)
  assert.ok(err instanceof Error)
  assert.equal(err.code, code, `code of ${err.name}: ${err.message}`)
  if (typeof message === 'string') assert.equal(err.message, message)
  else if (message instanceof RegExp) assert.match(err.message, message)
  else if (typeof message === 'function') assert.ok(message(err.message), `unexpected message: ${err.message}`)
  return err
}

/** assert.rejects with class + code (+ message) checks; returns the error. */
export async function rejectsWith(promise, Class, code, message) {
  assert.ok(promise instanceof Promise, 'expected a promise (errors must be rejections, not throws)')
  let err
  await assert.rejects(promise, (e) => {
    err = e
    return true
  })
  return checkError(err, Class, code, message)
}

/** Synchronous throw with class + code (+ message) checks; returns the error. */
export function throwsWith(fn, Class, code, message) {
  let err
  assert.throws(fn, (e) => {
    err = e
    return true
  })
  return checkError(err, Class, code, message)
}

/** Resolves like `promise`, or fails the test after `ms` (the timer never outlives it). */
export async function withTimeout(promise, ms, message) {
  let timer
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new assert.AssertionError({ message: `${message} (after ${ms} ms)` })), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** Blocks this thread (no event loop turn) until `pred()` is true or `maxMs` passes. */
export function spinUntil(pred, maxMs = 2000) {
  const end = Date.now() + maxMs
  while (!pred()) {
    if (Date.now() > end) return false
  }
  return true
}

/** Polls `pred` on the event loop until true or `maxMs` passes. */
export async function eventually(pred, maxMs = 2000, what = 'condition') {
  const end = Date.now() + maxMs
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out after ${maxMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

/** Lets the event loop run a few turns (enough for cross-thread wake-ups to be drained). */
export async function settle(ms = 20) {
  await new Promise((r) => setTimeout(r, ms))
}

/**
 * Runs `node <args>` in a child process. Resolves { code, signal, stdout, stderr, lines }
 * where `lines` are the JSON lines the child printed. `onLine(obj, child)` sees each one.
 * A safety timer kills the child after `killAfter` ms.
 */
export function runNode(args, { killAfter = 10000, onLine, cwd, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let buf = ''
    const lines = []
    const safety = setTimeout(() => child.kill('SIGKILL'), killAfter)
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (d) => {
      stdout += d
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        if (!line.trim()) continue
        let obj
        try {
          obj = JSON.parse(line)
        } catch {
          obj = { raw: line }
        }
        obj.at = Date.now()
        lines.push(obj)
        if (onLine) onLine(obj, child)
      }
    })
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(safety)
      resolve({ code, signal, stdout, stderr, lines, exitedAt: Date.now() })
    })
  })
}
