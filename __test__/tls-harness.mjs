// TLS redis-server processes for the TLS tests (not a test file: node --test only picks
// *.test.mjs). Built on redis-harness.mjs: a TlsRedisServer is a RedisServer (same log and
// pid files, so the harness's watchdog kills it too if the test process is SIGKILLed) that
// listens only on a TLS port (`--port 0 --tls-port N`), on a free loopback port.
//
//   const certs = makeCerts()                  // CA, server cert (SAN IP:127.0.0.1, DNS:localhost), other CA
//   const [server] = await useRedisTls(certs)  // started now, stopped by an after() hook
//   await server.cmd('GET', 'k')               // one command over a TLS socket trusting certs.caPem
//
// The certificates are made with the openssl CLI into a temp dir removed at exit. If openssl
// or a TLS-capable redis-server is missing the suite fails loudly: it is never skipped.
import { after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { RedisServer, freePort, redisCmd } from './redis-harness.mjs'

const BIN = process.env.REDIS_SERVER_BIN || 'redis-server'
const OPENSSL = process.env.OPENSSL_BIN || 'openssl'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const certDirs = new Set()
const live = new Set()
process.on('exit', () => {
  for (const s of live) s._signal('SIGKILL')
  for (const d of certDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true })
    } catch {}
  }
})

function openssl(args, cwd) {
  try {
    execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
  } catch (e) {
    throw new Error(`'${OPENSSL} ${args.join(' ')}' failed (the TLS tests need the openssl CLI): ${e.message}\n${e.stderr || ''}`)
  }
}

// The commands, as run (cwd = the temp dir). EC P-256 keys: fast to make, accepted by rustls.
// rustls/webpki insist on v3 certificates: a CA with basicConstraints CA:TRUE and keyCertSign,
// a leaf with CA:FALSE, serverAuth and the SAN that is checked (no CN fallback).
export const OPENSSL_COMMANDS = [
  ['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=oxlock test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'],
  ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext'],
  ['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '2', '-subj', '/CN=oxlock unrelated CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  // A client certificate (mutual TLS) and a server certificate for another host name, both
  // signed by the test CA.
  ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=oxlock test client'],
  ['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'client.crt', '-days', '2', '-extfile', 'client.ext'],
  ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', 'wrong-name.key', '-out', 'wrong-name.csr', '-subj', '/CN=elsewhere.example'],
  ['x509', '-req', '-in', 'wrong-name.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'wrong-name.crt', '-days', '2', '-extfile', 'wrong-name.ext'],
]
export const SERVER_EXT = [
  'basicConstraints=CA:FALSE',
  'keyUsage=critical,digitalSignature,keyEncipherment',
  'extendedKeyUsage=serverAuth',
  'subjectAltName=IP:127.0.0.1,DNS:localhost',
  '',
].join('\n')
const CLIENT_EXT = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth', ''].join('\n')
const WRONG_NAME_EXT = SERVER_EXT.replace('subjectAltName=IP:127.0.0.1,DNS:localhost', 'subjectAltName=DNS:elsewhere.example')

/**
 * Makes a CA, a server certificate signed by it (SAN IP:127.0.0.1, DNS:localhost) and a
 * second, unrelated CA, in a fresh temp dir. Returns the file paths and the PEM strings.
 */
export function makeCerts() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-tls-'))
  certDirs.add(dir)
  fs.writeFileSync(path.join(dir, 'server.ext'), SERVER_EXT)
  fs.writeFileSync(path.join(dir, 'client.ext'), CLIENT_EXT)
  fs.writeFileSync(path.join(dir, 'wrong-name.ext'), WRONG_NAME_EXT)
  for (const c of OPENSSL_COMMANDS) openssl(c, dir)
  const f = (name) => path.join(dir, name)
  const pem = (name) => fs.readFileSync(f(name), 'utf8')
  return {
    clientCertPem: pem('client.crt'),
    clientKeyPem: pem('client.key'),
    // The same CA, a server certificate for elsewhere.example (not 127.0.0.1).
    wrongName: { caFile: f('ca.crt'), caPem: pem('ca.crt'), certFile: f('wrong-name.crt'), keyFile: f('wrong-name.key'), servername: 'elsewhere.example' },
    dir,
    caFile: f('ca.crt'),
    caPem: fs.readFileSync(f('ca.crt'), 'utf8'),
    certFile: f('server.crt'),
    keyFile: f('server.key'),
    otherCaFile: f('other-ca.crt'),
    otherCaPem: fs.readFileSync(f('other-ca.crt'), 'utf8'),
  }
}

/**
 * Sends one command over TLS to 127.0.0.1:port, trusting only `ca`, and resolves its reply
 * (error replies reject). Rejects on a handshake failure or after `timeout` ms.
 */
export function tlsRedisCmd(port, ca, args, { timeout = 2000, cert, key, servername } = {}) {
  return redisCmd(port, args, { timeout, ca, cert, key, servername })
}

/** A redis-server that listens only on a TLS port (`this.port`), with the certs of makeCerts(). */
export class TlsRedisServer extends RedisServer {
  constructor(port, certs, args = []) {
    super(port, args)
    this.certs = certs
    this.clientCert = certs.clientCertPem && { cert: certs.clientCertPem, key: certs.clientKeyPem }
    this.servername = certs.servername
  }

  get url() {
    return `rediss://127.0.0.1:${this.port}`
  }

  /** Starts redis-server (--port 0 --tls-port this.port) and waits until it answers PING over TLS. */
  async start() {
    assert.equal(this.proc, null, `redis on ${this.port} is running already`)
    assert.notEqual(this.port, 6379, 'never touch the shared server on 6379')
    assert.notEqual(this.port, 6380, 'never touch a standard port')
    try {
      fs.rmSync(this.logFile, { force: true })
    } catch {}
    const proc = spawn(
      BIN,
      [
        '--port', '0',
        '--tls-port', String(this.port),
        '--tls-cert-file', this.certs.certFile,
        '--tls-key-file', this.certs.keyFile,
        '--tls-ca-cert-file', this.certs.caFile,
        '--tls-auth-clients', 'no',
        '--bind', '127.0.0.1',
        '--save', '',
        '--appendonly', 'no',
        '--daemonize', 'no',
        '--dir', path.dirname(this.logFile),
        '--logfile', this.logFile,
        '--pidfile', this.pidFile,
        '--protected-mode', 'no',
        ...this.args,
      ],
      { stdio: 'ignore', detached: false },
    )
    proc.unref()
    this.proc = proc
    this.paused = false
    live.add(this)
    let exited = null
    proc.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        exited = { code, signal }
        live.delete(this)
        resolve(exited)
      })
      proc.on('error', (e) => {
        exited = { code: null, signal: null, error: e }
        live.delete(this)
        resolve(exited)
      })
    })
    const deadline = Date.now() + 10000
    for (;;) {
      if (exited !== null) {
        this.proc = null
        const log = this.log()
        const err = new Error(
          `redis-server (TLS) on port ${this.port} exited before answering PING (${JSON.stringify(exited)}); ` +
            `the TLS tests need a redis-server built with TLS:\n${log}`,
        )
        err.startFailed = true
        err.addressInUse = /Address already in use|bind/i.test(log)
        throw err
      }
      try {
        if ((await this.cmd('PING')) === 'PONG') {
          const info = await this.cmd('INFO', 'server')
          const pid = Number(/process_id:(\d+)/.exec(info)?.[1])
          if (pid === proc.pid) return this
          await this.kill()
          const err = new Error(`port ${this.port} is answered by another redis-server (pid ${pid})`)
          err.addressInUse = true
          throw err
        }
      } catch (e) {
        if (e.addressInUse) throw e
      }
      if (Date.now() > deadline) {
        await this.kill()
        throw new Error(`redis-server (TLS) on port ${this.port} did not answer PING within 10 s:\n${this.log()}`)
      }
      await sleep(20)
    }
  }

  /** One command over TLS (trusting the test CA): `await s.cmd('GET', 'k')`. */
  cmd(...args) {
    // With the client certificate, for servers that ask for one (`--tls-auth-clients yes`);
    // the wrong-name server is reached by its name, as its certificate says.
    return tlsRedisCmd(this.port, this.certs.caPem, args, { timeout: 1000, cert: this.clientCert?.cert, key: this.clientCert?.key, servername: this.servername })
  }
}

/** Starts one TLS server on a fresh free port (retrying on a port conflict). */
export async function startRedisTls(certs, args = []) {
  for (let tries = 0; ; tries++) {
    const s = new TlsRedisServer(await freePort(), certs, args)
    try {
      return await s.start()
    } catch (e) {
      if (!e.addressInUse || tries >= 5) throw e
    }
  }
}

/** Starts `n` TLS servers and registers an after() hook that kills them. */
export async function useRedisTls(certs, n = 1) {
  const servers = await Promise.all(Array.from({ length: n }, () => startRedisTls(certs)))
  after(async () => {
    await Promise.all(servers.map((s) => s.kill()))
  })
  return servers
}
