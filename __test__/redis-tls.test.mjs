// The Redis backend over TLS, against a real redis-server listening only on a TLS port
// (tls-harness.mjs): a private CA given as a PEM string or a Buffer, and the failures a
// client must report when it does not trust the server (an unrelated CA, the system roots
// with `tls: true` or a rediss:// URL): E_UNAVAILABLE with a certificate reason per node,
// no panic, and a process that still exits by itself.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'

import { create, LockError, ConfigError } from '../index.mjs'
import { since, rejectsWith, withTimeout, runNode } from './helpers.mjs'
import { makeCerts, useRedisTls, startRedisTls } from './tls-harness.mjs'

const CHILD = fileURLToPath(new URL('./fixtures/redis-tls-child.mjs', import.meta.url))
const HEX32 = /^[0-9a-f]{32}$/

const managers = []
after(() => withTimeout(Promise.all(managers.map((m) => m.destroy())), 15000, 'destroying the TLS test managers'))

const certs = makeCerts()
const [server] = await useRedisTls(certs)
const host = '127.0.0.1'

function mk(connection, lockOptions = {}) {
  const m = create({ type: 'redis', connection, lockOptions })
  managers.push(m)
  return m
}

let n = 0
const key = (what) => `oxlock:tls:${what}:${++n}`

/** lock/unlock over TLS, with the key visible on the server (over our own TLS socket) while held. */
async function lockUnlock(connection, on = server) {
  const server = on
  const m = mk(connection, { retryCount: 0 })
  const k = key('ok')
  const h = await withTimeout(m.lock(k, 5000), 10000, 'lock() over TLS')
  assert.equal(h.resource, k)
  assert.match(h.value, HEX32)
  assert.equal(await server.cmd('GET', k), h.value, 'the key holds the token on the TLS server while the lock is held')
  await withTimeout(h.unlock(), 10000, 'unlock() over TLS')
  assert.equal(await server.cmd('GET', k), null, 'unlock() deleted the key')
  // And again on the same connection.
  const h2 = await withTimeout(m.lock(k, 5000), 10000, 'a second lock() over TLS')
  assert.equal(await server.cmd('GET', k), h2.value)
  await h2.unlock()
}

/** The rejection a client that does not trust the server's certificate must give. */
async function untrusted(connection) {
  const m = mk(connection, { retryCount: 0 })
  const t0 = Date.now()
  const err = await withTimeout(
    rejectsWith(m.lock(key('untrusted'), 5000), LockError, 'E_UNAVAILABLE'),
    10000,
    'lock() against an untrusted TLS server must reject',
  )
  const ms = since(t0)
  assert.ok(ms < 3000, `E_UNAVAILABLE should come within 3 s, took ${ms} ms`)
  assert.ok(Array.isArray(err.causes), `err.causes should be an array, got ${JSON.stringify(err.causes)}`)
  assert.ok(err.causes.length > 0, 'err.causes should not be empty')
  for (const c of err.causes) {
    assert.equal(typeof c, 'string')
    assert.ok(c.startsWith(`${server.label}: `), `a cause reads "host:port: reason", got ${JSON.stringify(c)}`)
  }
  assert.ok(
    err.causes.some((c) => /certificate/i.test(c)),
    `a cause should say the certificate was refused, got ${JSON.stringify(err.causes)}`,
  )
  assert.ok(Array.isArray(err.failures), `err.failures should be an array, got ${JSON.stringify(err.failures)}`)
  assert.equal(err.failures.length, 1, `one failure for the one node, got ${JSON.stringify(err.failures)}`)
  const [f] = err.failures
  assert.equal(f.node, server.label)
  assert.equal(f.kind, 'tls', `failures[0].kind, in ${JSON.stringify(err.failures)}`)
  assert.equal(typeof f.message, 'string')
  assert.ok(f.message.length > 0, 'failures[0].message should not be empty')
  return err
}

describe('TLS with a trusted private CA', { timeout: 30000 }, () => {
  test('a: tls: { ca: <PEM string> }: lock/unlock works, the key is on the server while held', async () => {
    await lockUnlock({ host, port: server.port, tls: { ca: certs.caPem } })
  })

  test('b: tls: { ca: <Buffer of the PEM> }: lock/unlock works, the key is on the server while held', async () => {
    await lockUnlock({ host, port: server.port, tls: { ca: Buffer.from(certs.caPem) } })
  })
})

describe('TLS with an untrusted server certificate', { timeout: 30000 }, () => {
  test('c: an unrelated CA: E_UNAVAILABLE within 3 s, a certificate cause, failures of kind tls', async () => {
    await untrusted({ host, port: server.port, tls: { ca: certs.otherCaPem } })
  })

  test('d: tls: true (system roots) against the self-signed server: as in c', async () => {
    await untrusted({ host, port: server.port, tls: true })
  })

  test('d: a rediss:// URL (system roots) against the self-signed server: as in c', async () => {
    await untrusted(`rediss://127.0.0.1:${server.port}`)
  })

  test('e: c and d in a child process: no panic, and it exits by itself with code 0 after destroy()', async () => {
    const r = await runNode([CHILD, String(server.port), certs.otherCaFile], { killAfter: 30000 })
    const report = `code ${r.code}, signal ${r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`
    assert.doesNotMatch(r.stderr, /panicked/, `the child panicked:\n${report}`)
    assert.equal(r.signal, null, `the child did not exit by itself (killed after 30 s):\n${report}`)
    assert.equal(r.code, 0, `the child failed:\n${report}`)
    const rejected = r.lines.filter((l) => l.ev === 'rejected')
    assert.deepEqual(
      rejected.map((l) => [l.name, l.code]),
      [
        ['wrong-ca', 'E_UNAVAILABLE'],
        ['tls-true', 'E_UNAVAILABLE'],
        ['rediss-url', 'E_UNAVAILABLE'],
      ],
      report,
    )
    for (const l of rejected) {
      assert.ok(Array.isArray(l.causes) && l.causes.some((c) => /certificate/i.test(c)), `${l.name}: causes ${JSON.stringify(l.causes)}`)
      assert.ok(l.ms < 3000, `${l.name}: took ${l.ms} ms`)
    }
    assert.ok(r.lines.some((l) => l.ev === 'destroyed'), report)
  })
})

describe('mutual TLS, host names and rejectUnauthorized', { timeout: 30000 }, () => {
  test('f: a server that asks for a client certificate: cert + key work; without them E_UNAVAILABLE, no hang', async () => {
    const mtls = await startRedisTls(certs, ['--tls-auth-clients', 'yes'])
    try {
      await lockUnlock({ host, port: mtls.port, tls: { ca: certs.caPem, cert: certs.clientCertPem, key: Buffer.from(certs.clientKeyPem) } }, mtls)
      const m = mk({ host, port: mtls.port, tls: { ca: certs.caPem } }, { retryCount: 0 })
      const t0 = Date.now()
      const err = await withTimeout(rejectsWith(m.lock(key('no-client-cert'), 5000), LockError, 'E_UNAVAILABLE'), 10000, 'lock() without a client certificate')
      assert.ok(since(t0) < 3000, `took ${since(t0)} ms`)
      assert.ok(err.causes.every((c) => c.startsWith(`${mtls.label}: `)), JSON.stringify(err.causes))
    } finally {
      await mtls.kill()
    }
  })

  test('g: a certificate for another host name, from a trusted CA: E_UNAVAILABLE with a certificate cause', async () => {
    const other = await startRedisTls(certs.wrongName)
    try {
      const m = mk({ host, port: other.port, tls: { ca: certs.caPem } }, { retryCount: 0 })
      const err = await withTimeout(rejectsWith(m.lock(key('wrong-name'), 5000), LockError, 'E_UNAVAILABLE'), 10000, 'lock() against a certificate for another name')
      assert.ok(err.causes.some((c) => /certificate/i.test(c)), JSON.stringify(err.causes))
      assert.equal(err.failures[0].kind, 'tls')
    } finally {
      await other.kill()
    }
  })

  test('h: rejectUnauthorized: false skips the checks (self-signed, no ca given)', async () => {
    await lockUnlock({ host, port: server.port, tls: { rejectUnauthorized: false } })
  })

  test('i: tls fields are checked: a wrong type names the field; servername only where the JS thread drives the socket', () => {
    assert.throws(() => create({ type: 'redis', connection: { host, port: server.port, tls: { ca: 42 } } }), (e) => e instanceof TypeError && e.code === 'E_CONFIG' && /connection\.tls\.ca/.test(e.message))
    assert.throws(() => create({ type: 'redis', connection: { host, port: server.port, tls: { cert: certs.clientCertPem } } }), (e) => e instanceof ConfigError && /cert and key go together/.test(e.message))
    assert.throws(() => create({ type: 'redis', connection: { host, port: server.port, tls: { servername: 42 } } }), (e) => e instanceof TypeError && /connection\.tls\.servername/.test(e.message))
    assert.throws(() => create({ type: 'redis', connection: { host, port: server.port, tls: { servername: '' } } }), (e) => e instanceof TypeError && /connection\.tls\.servername/.test(e.message))
    assert.throws(
      () => create({ type: 'redis', connection: { sentinels: [{ host, port: 1 }], name: 'm', tls: { ca: certs.caPem, servername: 'x.example' } } }),
      (e) => e instanceof ConfigError && /servername is supported on a plain host and port only/.test(e.message),
    )
  })

  test('j: servername: the name the certificate must carry when it is not the host connected to', async () => {
    const other = await startRedisTls(certs.wrongName)
    try {
      // 127.0.0.1 is not in the certificate; the name given is.
      await lockUnlock({ host, port: other.port, tls: { ca: certs.caPem, servername: certs.wrongName.servername } }, other)
      const m = mk({ host, port: other.port, tls: { ca: certs.caPem, servername: 'not-this.example' } }, { retryCount: 0 })
      const err = await withTimeout(rejectsWith(m.lock(key('servername'), 5000), LockError, 'E_UNAVAILABLE'), 10000, 'lock() with a servername the certificate lacks')
      assert.equal(err.failures[0].kind, 'tls')
      assert.ok(err.causes.some((c) => /not-this\.example/.test(c)), JSON.stringify(err.causes))
    } finally {
      await other.kill()
    }
  })

  test('k: a client key that does not match its certificate fails that node with kind tls, and a lock made in the same tick on a good node still works', async () => {
    // Readable PEM, so create() takes it; Node's tls.connect throws on the pair at once.
    const otherKey = fs.readFileSync(certs.keyFile, 'utf8')
    const bad = mk({ host, port: server.port, tls: { ca: certs.caPem, cert: certs.clientCertPem, key: otherKey } }, { retryCount: 0 })
    const good = mk({ host, port: server.port, tls: { ca: certs.caPem } }, { retryCount: 0 })
    // Both opens go out in one batch: the first throws inside tls.connect.
    const [b, g] = await withTimeout(Promise.allSettled([bad.lock(key('badkey'), 5000), good.lock(key('goodkey'), 5000)]), 10000, 'a bad key and a good node in one tick')
    assert.equal(b.status, 'rejected')
    assert.equal(b.reason.code, 'E_UNAVAILABLE', String(b.reason))
    assert.equal(b.reason.failures[0].kind, 'tls', JSON.stringify(b.reason.failures))
    assert.equal(g.status, 'fulfilled', String(g.reason))
    await g.value.unlock()
  })
})
