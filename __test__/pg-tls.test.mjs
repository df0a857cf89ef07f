// The PostgreSQL backend over TLS: a real server with `ssl = on` and a certificate made here
// with openssl (tls-harness.mjs), trusted through `connection.ssl.ca`; an unrelated CA fails
// fast as a TLS failure; `rejectUnauthorized: false` skips the checks. The server's
// pg_stat_ssl shows that the connection really is encrypted.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { create, LockError } from '../index.mjs'
import { since, checkError } from './helpers.mjs'
import { usePostgres } from './pg-harness.mjs'
import { makeCerts } from './tls-harness.mjs'

const certs = makeCerts()
// The server reads its key as the postgres OS user, and refuses a key others can read.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-pg-tls-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))
const cert = path.join(dir, 'server.crt')
const key = path.join(dir, 'server.key')
fs.copyFileSync(certs.certFile, cert)
fs.copyFileSync(certs.keyFile, key)
fs.chmodSync(key, 0o600)
if (process.getuid?.() === 0) {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
  for (const f of [dir, cert, key]) fs.chownSync(f, uid, gid)
}

const pg = await usePostgres({ settings: { ssl: 'on', ssl_cert_file: cert, ssl_key_file: key } })

const managers = []
after(() => Promise.allSettled(managers.map((m) => m.destroy())))
const mk = (ssl, lockOptions = {}) => {
  const m = create({ type: 'postgres', connection: { ...pg.options, ssl }, lockOptions })
  managers.push(m)
  return m
}

/** Whether every connection oxlock holds to the server is encrypted (and there is one). */
async function oxlockConnectionsUseTls() {
  const rows = await pg.query("select s.ssl from pg_stat_ssl s join pg_stat_activity a using (pid) where a.application_name = 'oxlock'")
  return rows.length > 0 && rows.every((r) => r.ssl === true)
}

describe('PostgreSQL over TLS', { timeout: 30000 }, () => {
  test('ssl.ca trusts the test CA: lock, extend, unlock over an encrypted connection', async () => {
    const m = mk({ ca: certs.caPem })
    const h = await m.lock('oxlock:pg:tls:ca', 5000)
    assert.ok(Number.isSafeInteger(h.fence))
    assert.ok(await oxlockConnectionsUseTls(), 'pg_stat_ssl: the connection is not encrypted')
    await h.extend(5000)
    await h.unlock()
    await m.destroy()
  })

  test('a certificate from a CA we do not trust fails at once: E_UNAVAILABLE, kind tls', async () => {
    const m = mk({ ca: certs.otherCaPem }, { retryCount: 0 })
    const t0 = Date.now()
    const err = await m.lock('oxlock:pg:tls:other-ca', 1000).then(
      () => assert.fail('locked over an untrusted certificate'),
      (e) => e,
    )
    checkError(err, LockError, 'E_UNAVAILABLE')
    assert.equal(err.failures[0].kind, 'tls', JSON.stringify(err.failures))
    assert.equal(err.failures[0].node, pg.label)
    assert.ok(since(t0) < 5000, `took ${since(t0)} ms`)
  })

  test('the system roots alone (ssl: true) do not trust a private CA', async () => {
    const m = mk(true, { retryCount: 0 })
    const err = await m.lock('oxlock:pg:tls:roots', 1000).then(
      () => assert.fail('locked over a certificate the system roots do not know'),
      (e) => e,
    )
    checkError(err, LockError, 'E_UNAVAILABLE')
    assert.equal(err.failures[0].kind, 'tls', JSON.stringify(err.failures))
  })

  test('rejectUnauthorized: false skips the checks (and still encrypts)', async () => {
    const m = mk({ rejectUnauthorized: false })
    const h = await m.lock('oxlock:pg:tls:insecure', 5000)
    assert.ok(await oxlockConnectionsUseTls())
    await h.unlock()
  })
})
