// Processes that use a Redis manager exit by themselves: after destroy() (which deletes the
// held keys and rejects queued lock() calls), while still holding locks, after an aborted
// wait, and after a refused connection.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'

import { runNode } from './helpers.mjs'
import { useRedis, freePort } from './redis-harness.mjs'

const CHILD = fileURLToPath(new URL('./fixtures/redis-lifecycle-child.mjs', import.meta.url))
const [server] = await useRedis(1)

/** Runs a child variant; it is killed (and the test fails) if it does not exit by itself. */
async function child(variant, port = server.port, killAfter = 8000) {
  const r = await runNode([CHILD, variant, String(port)], { killAfter })
  const ev = (name) => r.lines.find((l) => l.ev === name)
  assert.equal(r.signal, null, `the '${variant}' child did not exit by itself within ${killAfter} ms; it printed:\n${r.stdout}\n${r.stderr}`)
  assert.equal(r.code, 0, `the '${variant}' child failed:\n${r.stderr}`)
  return { ...r, ev }
}

describe('process lifetime with a Redis manager', { timeout: 40000 }, () => {
  test('destroy(): the queued lock() rejects E_DESTROYED, held keys are deleted, the process exits by itself within ~3 s', async () => {
    const r = await child('destroy-held-and-queued')
    const locked = r.ev('locked')
    assert.ok(locked, r.stdout)
    const destroying = r.ev('destroying')
    assert.equal(destroying.size, 2, 'two keys held or awaited before destroy()')
    const rejected = r.ev('rejected')
    assert.ok(rejected, `the queued lock() should be rejected:\n${r.stdout}`)
    assert.equal(rejected.name, 'DestroyedError')
    assert.equal(rejected.code, 'E_DESTROYED')
    assert.equal(r.ev('granted'), undefined)
    assert.ok(r.ev('destroyed'))
    assert.ok(r.exitedAt - destroying.at < 3000, `exited ${r.exitedAt - destroying.at} ms after destroy()`)
    assert.equal(await server.get('lc:held'), null, 'destroy() deletes the held key')
    assert.equal(await server.get('lc:other'), null)
  })

  test('a process holding a lock without destroy() still exits by itself (the key stays until its ttl)', async () => {
    const r = await child('hold-without-destroy')
    const locked = r.ev('locked')
    assert.ok(locked)
    assert.ok(r.exitedAt - locked.at < 3000, `exited ${r.exitedAt - locked.at} ms after locking`)
    assert.equal(await server.get('lc:kept'), locked.value)
    const pttl = await server.pttl('lc:kept')
    assert.ok(pttl > 50000, `PTTL ${pttl}`)
    await server.cmd('DEL', 'lc:kept')
  })

  test('an idle manager does not keep the process alive', async () => {
    const r = await child('idle')
    assert.ok(r.ev('unlocked'))
    assert.ok(r.exitedAt - r.ev('unlocked').at < 3000)
  })

  test('a refused connection does not keep the process alive', async () => {
    const r = await child('refused', await freePort())
    assert.equal(r.ev('rejected').code, 'E_UNAVAILABLE')
  })

  test('an aborted queued lock() does not keep the process alive until the holder\'s ttl', async () => {
    const r = await child('aborted-waiter', server.port, 5000)
    const rejected = r.ev('rejected')
    assert.equal(rejected.code, 'E_ABORTED')
    assert.ok(r.exitedAt - rejected.at < 3000, `exited ${r.exitedAt - rejected.at} ms after the abort`)
    await server.cmd('DEL', 'lc:abort')
  })
})
