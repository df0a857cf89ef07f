// Redis ACL users: everything the lock does works for a user allowed exactly the commands the
// README lists (and no more); a user without one of them, or with a wrong password, gets
// E_AUTH at the first attempt, naming what was refused and never the password.
import { test, describe, after, before } from 'node:test'
import assert from 'node:assert/strict'
import util from 'node:util'
import { readFileSync } from 'node:fs'

import { create, LockError } from '../index.mjs'
import { since, checkError, withTimeout } from './helpers.mjs'
import { RedisServer, freePort } from './redis-harness.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const PW = 'acl-s3cret-pw'

// The README's list (Redis section, "ACL users"): keep the two the same.
const NEEDED = ['eval', 'evalsha', 'script|load', 'exists', 'set', 'get', 'del', 'pexpire', 'incr', 'publish', 'time', 'subscribe', 'unsubscribe', 'ping']

let server
const managers = []
before(async () => {
  server = new RedisServer(await freePort())
  await server.start()
  const user = (name, commands) => server.cmd('ACL', 'SETUSER', name, 'reset', 'on', `>${PW}`, '~*', 'resetchannels', '&oxlock:freed:*', '&__keyspace@*', '-@all', ...commands.map((c) => `+${c}`))
  await user('locker', NEEDED)
  await user('no-eval', NEEDED.filter((c) => c !== 'eval' && c !== 'evalsha'))
  await user('no-publish', NEEDED.filter((c) => c !== 'publish'))
})
after(async () => {
  await Promise.allSettled(managers.map((m) => m.destroy()))
  await server.kill()
})

function mk(username, lockOptions = {}, password = PW) {
  const m = create({ type: 'redis', connection: { host: '127.0.0.1', port: server.port, username, password }, lockOptions })
  managers.push(m)
  return m
}

const noPassword = (err) => {
  for (const text of [err.message, util.inspect(err, { depth: 5 }), JSON.stringify(err), err.stack]) {
    assert.ok(!String(text).includes(PW), `the password leaks: ${text}`)
  }
}

describe('an ACL user allowed only the commands the README lists', { timeout: 30000 }, () => {
  test('the README lists the same commands', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const line = readme.split('\n').find((l) => l.startsWith('ACL SETUSER locker '))
    assert.ok(line, 'the README has the ACL SETUSER line')
    const listed = line.split(' ').filter((w) => w.startsWith('+')).map((w) => w.slice(1))
    assert.deepEqual(listed.sort(), [...NEEDED].sort())
    assert.ok(line.includes('&oxlock:freed:*') && line.includes('&__keyspace@*'))
  })

  test('lock, fence, extend, unlock, a waiter woken by the unlock, multi-resource locks, using()', async () => {
    const a = mk('locker')
    const b = mk('locker', { retryCount: 20, retryDelay: 3000 })
    const h = await a.lock('acl:k', 5000)
    assert.ok(Number.isSafeInteger(h.fence) && h.fence > 0)
    await h.extend(5000)
    // b waits in another manager (its own connections); our unlock's publish wakes it long
    // before its 3 s retry timer.
    const waiting = b.lock('acl:k', 5000)
    await sleep(300)
    const t0 = Date.now()
    await h.unlock()
    const g = await waiting
    assert.ok(since(t0) < 2500, `woken ${since(t0)} ms after the unlock`)
    assert.ok(g.fence > h.fence)
    await g.unlock()
    const multi = await a.lock(['acl:x', 'acl:y'], 2000)
    await multi.extend(2000)
    await multi.unlock()
    assert.equal(await a.using('acl:u', async () => 'ran'), 'ran')
    assert.equal(await server.get('acl:k'), null)
  })

  test('a user that may not run EVAL/EVALSHA: E_AUTH at the first attempt, naming NOPERM', async () => {
    const m = mk('no-eval', { retryCount: 10, retryDelay: 500 })
    const t0 = Date.now()
    const err = await withTimeout(m.lock('acl:e', 1000).then(() => null, (e) => e), 8000, 'lock() without EVAL')
    checkError(err, LockError, 'E_AUTH')
    assert.ok(since(t0) < 2500, `took ${since(t0)} ms: the refusal was retried`)
    assert.equal(err.attempts, 1)
    assert.equal(err.failures[0].kind, 'auth')
    assert.match(err.causes[0], /NOPERM/)
    assert.match(err.causes[0], /eval/i)
    noPassword(err)
  })

  test('a user whose scripts may not PUBLISH: unlock() does not resolve as if it had released', async () => {
    const m = mk('no-publish', { retryCount: 0 })
    const h = await m.lock('acl:p', 3000)
    // The unlock's script stops at the forbidden publish; Redis rolls nothing back, so the
    // delete before it stands. Either way nothing hangs, and the key is gone by its ttl.
    await withTimeout(h.unlock(), 5000, 'unlock() without PUBLISH')
    const end = Date.now() + 4000
    while ((await server.get('acl:p')) !== null && Date.now() < end) await sleep(50)
    assert.equal(await server.get('acl:p'), null)
  })

  test('a wrong password for an ACL user: E_AUTH, without the password', async () => {
    const m = mk('locker', { retryCount: 10, retryDelay: 500 }, 'not-' + PW)
    const t0 = Date.now()
    const err = await withTimeout(m.lock('acl:w', 1000).then(() => null, (e) => e), 8000, 'lock() with a wrong password')
    checkError(err, LockError, 'E_AUTH')
    assert.ok(since(t0) < 2500, `took ${since(t0)} ms`)
    const leaks = [err.message, util.inspect(err, { depth: 5 }), JSON.stringify(err)].filter((t) => t.includes('not-' + PW))
    assert.deepEqual(leaks, [])
  })
})
