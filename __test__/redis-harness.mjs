// Real redis-server processes for the Redis tests (not a test file: node --test only picks
// *.test.mjs). Each server runs in the foreground as a child of the test process, on a free
// loopback port chosen here (never 6379: a shared server runs there), without persistence.
//
//   const servers = await useRedis(5)     // started now, stopped by an after() hook
//   servers[0].kill() / .pause() / .resume() / .restart()   (restart: same port)
//   await servers[0].cmd('GET', 'k')      // one command over a raw socket
//
// If redis-server is missing the suite fails loudly (CI installs it): it is never skipped.
// REDIS_SERVER_BIN overrides the binary.
import { after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import net from 'node:net'
import tls from 'node:tls'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const BIN = process.env.REDIS_SERVER_BIN || 'redis-server'

let version
try {
  version = execFileSync(BIN, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
} catch (e) {
  throw new Error(
    `The Redis test suite needs the redis-server binary on PATH (CI installs it; on Debian/Ubuntu: apt-get install redis-server). ` +
      `Running '${BIN} --version' failed: ${e.message}`,
  )
}
export const REDIS_VERSION = version

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-redis-'))
const live = new Set()

// Whatever happens to the test process, its servers go with it (SIGKILL also ends stopped ones).
function killAll() {
  for (const s of live) s._signal('SIGKILL')
}
process.on('exit', () => {
  killAll()
  try {
    fs.rmSync(workDir, { recursive: true, force: true })
  } catch {}
})
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll()
    process.kill(process.pid, sig)
  })
}
// And if this process is SIGKILLed (a runner's timeout), a watchdog kills what is left: every
// server writes a pid file into workDir, removed when the harness stops it.
{
  const watchdog = spawn(
    '/bin/sh',
    [
      '-c',
      'while kill -0 "$0" 2>/dev/null; do sleep 1; done; for f in "$1"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done; rm -rf "$1"',
      String(process.pid),
      workDir,
    ],
    { stdio: 'ignore', detached: true },
  )
  watchdog.on('error', () => {})
  watchdog.unref()
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** A free TCP port on 127.0.0.1 (asked from the kernel), never 6379. */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer()
      srv.unref()
      srv.on('error', reject)
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address()
        srv.close(() => resolve(port))
      })
    })
    if (port !== 6379) return port
  }
}

// ---- A minimal RESP client: one connection per command, so killed or paused servers leave
// no reconnecting client behind.

function parseReply(buf, i = 0) {
  if (i >= buf.length) return null
  const type = String.fromCharCode(buf[i])
  const eol = buf.indexOf('\r\n', i)
  if (eol < 0) return null
  const line = buf.toString('utf8', i + 1, eol)
  const next = eol + 2
  switch (type) {
    case '+':
      return { value: line, end: next }
    case '-': {
      const err = new Error(line)
      err.redisError = true
      return { value: err, end: next }
    }
    case ':':
      return { value: Number(line), end: next }
    case '$': {
      const len = Number(line)
      if (len < 0) return { value: null, end: next }
      if (buf.length < next + len + 2) return null
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, end: next }
      const arr = []
      let at = next
      for (let k = 0; k < n; k++) {
        const r = parseReply(buf, at)
        if (r === null) return null
        arr.push(r.value)
        at = r.end
      }
      return { value: arr, end: at }
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`)
  }
}

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8')
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/**
 * Sends one command to 127.0.0.1:port and resolves its reply (error replies reject).
 * Rejects on a refused connection or after `timeout` ms without a full reply. With `ca`,
 * it speaks TLS and trusts only that CA.
 */
export function redisCmd(port, args, { timeout = 2000, ca, cert, key, servername } = {}) {
  return new Promise((resolve, reject) => {
    const sock = ca === undefined ? net.connect({ port, host: '127.0.0.1' }) : tls.connect({ port, host: '127.0.0.1', ca, cert, key, servername })
    let buf = Buffer.alloc(0)
    let done = false
    const finish = (err, value) => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      if (err) reject(err)
      else resolve(value)
    }
    const timer = setTimeout(() => finish(new Error(`redis 127.0.0.1:${port}: no reply to ${args[0]} within ${timeout} ms`)), timeout)
    sock.on(ca === undefined ? 'connect' : 'secureConnect', () => sock.write(encode(args)))
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      let r
      try {
        r = parseReply(buf)
      } catch (e) {
        return finish(e)
      }
      if (r === null) return
      if (r.value instanceof Error) finish(r.value)
      else finish(null, r.value)
    })
    sock.on('error', (e) => finish(e))
    sock.on('close', () => finish(new Error(`redis 127.0.0.1:${port}: connection closed before a reply to ${args[0]}`)))
  })
}

export class RedisServer {
  /** `args`: extra redis-server arguments, e.g. ['--requirepass', 'pw']; `configFile`: a
   *  config file to start from (redis-server takes it as its first argument; sentinels need one). */
  constructor(port, args = [], { configFile } = {}) {
    this.port = port
    this.args = args
    this.configFile = configFile
    this.proc = null
    this.paused = false
    this.logFile = path.join(workDir, `redis-${port}.log`)
    this.pidFile = path.join(workDir, `redis-${port}.pid`)
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`
  }

  get options() {
    return { host: '127.0.0.1', port: this.port }
  }

  get label() {
    return `127.0.0.1:${this.port}`
  }

  get running() {
    return this.proc !== null
  }

  log() {
    try {
      return fs.readFileSync(this.logFile, 'utf8')
    } catch {
      return ''
    }
  }

  /** Starts redis-server on this.port and waits until it answers PING. */
  async start() {
    assert.equal(this.proc, null, `redis on ${this.port} is running already`)
    assert.notEqual(this.port, 6379, 'never touch the shared server on 6379')
    try {
      fs.rmSync(this.logFile, { force: true })
    } catch {}
    const proc = spawn(
      BIN,
      [
        ...(this.configFile ? [this.configFile] : []),
        '--port', String(this.port),
        '--bind', '127.0.0.1',
        '--save', '',
        '--appendonly', 'no',
        '--daemonize', 'no',
        '--dir', workDir,
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
        resolve(exited)
      })
      proc.on('error', (e) => {
        exited = { code: null, signal: null, error: e }
        resolve(exited)
      })
    })
    const deadline = Date.now() + 10000
    for (;;) {
      if (exited !== null) {
        this.proc = null
        live.delete(this)
        const err = new Error(`redis-server on port ${this.port} exited before answering PING (${JSON.stringify(exited)}):\n${this.log()}`)
        err.startFailed = true
        err.addressInUse = /Address already in use|bind/i.test(this.log())
        throw err
      }
      try {
        if ((await redisCmd(this.port, ['PING'], { timeout: 500 })) === 'PONG') {
          // Ours, or another server that took the port first (then ours is exiting)?
          const info = await redisCmd(this.port, ['INFO', 'server'], { timeout: 500 })
          const pid = Number(/process_id:(\d+)/.exec(info)?.[1])
          if (pid === proc.pid) return this
          await this.kill()
          const err = new Error(`port ${this.port} is answered by another redis-server (pid ${pid})`)
          err.addressInUse = true
          throw err
        }
      } catch (e) {
        if (e.addressInUse) throw e
        // A server with a password answers, just not with PONG: it is up.
        if (e.redisError && /NOAUTH/.test(e.message)) return this
      }
      if (Date.now() > deadline) {
        await this.kill()
        throw new Error(`redis-server on port ${this.port} did not answer PING within 10 s:\n${this.log()}`)
      }
      await sleep(20)
    }
  }

  _signal(sig) {
    if (this.proc === null) return
    try {
      this.proc.kill(sig)
    } catch {}
  }

  /** SIGKILL, and waits for the process to be gone (the port is then refused). */
  async kill() {
    const proc = this.proc
    if (proc === null) return
    this._signal('SIGKILL')
    proc.ref() // the wait for its exit must keep the event loop alive
    await proc.exited
    this.proc = null
    this.paused = false
    live.delete(this)
    try {
      fs.rmSync(this.pidFile, { force: true })
    } catch {}
  }

  /** SIGSTOP: the port still accepts connections (kernel backlog) but nothing answers. */
  pause() {
    assert.ok(this.proc, `redis on ${this.port} is not running`)
    this._signal('SIGSTOP')
    this.paused = true
    // kill() returns before the process has stopped: a command sent in that moment could
    // still be answered. Wait (synchronously, callers do not await) until every thread is.
    const tasks = `/proc/${this.proc.pid}/task`
    const stopped = () => {
      try {
        return fs.readdirSync(tasks).every((t) => {
          const stat = fs.readFileSync(`${tasks}/${t}/stat`, 'utf8')
          return /^[Tt]/.test(stat.slice(stat.lastIndexOf(')') + 2))
        })
      } catch {
        return true // gone, or no /proc: nothing more to wait for
      }
    }
    const end = Date.now() + 1000
    const nap = new Int32Array(new SharedArrayBuffer(4))
    while (!stopped() && Date.now() < end) Atomics.wait(nap, 0, 0, 1)
  }

  /** SIGCONT. Safe to call when not paused. */
  resume() {
    if (this.proc === null) return
    this._signal('SIGCONT')
    this.paused = false
  }

  /** Kill (if running) then start again on the same port. */
  async restart() {
    await this.kill()
    const deadline = Date.now() + 5000
    for (;;) {
      try {
        return await this.start()
      } catch (e) {
        if (!e.addressInUse || Date.now() > deadline) throw e
        await sleep(50)
      }
    }
  }

  /** One command: `await s.cmd('GET', 'k')`. */
  cmd(...args) {
    return redisCmd(this.port, args)
  }

  get(key) {
    return this.cmd('GET', key)
  }

  pttl(key) {
    return this.cmd('PTTL', key)
  }

  flush() {
    return this.cmd('FLUSHALL')
  }
}

/** Starts one server on a fresh free port (retrying on a port conflict). */
export async function startRedis(args = []) {
  for (let tries = 0; ; tries++) {
    const s = new RedisServer(await freePort(), args)
    try {
      return await s.start()
    } catch (e) {
      if (!e.addressInUse || tries >= 5) throw e
    }
  }
}

/** Stops every server started by this process. */
export async function stopAll() {
  await Promise.all([...live].map((s) => s.kill()))
}

/**
 * Starts `n` servers and registers an after() hook (of the enclosing suite, or of the file at
 * top level) that kills them, whether the tests passed or not.
 */
export async function useRedis(n = 1) {
  const servers = await Promise.all(Array.from({ length: n }, () => startRedis()))
  after(async () => {
    await Promise.all(servers.map((s) => s.kill()))
  })
  return servers
}

/** Values of `key` on each server (null where absent; 'DOWN' where it cannot answer). */
export async function valuesOn(servers, key) {
  return Promise.all(servers.map((s) => (s.running && !s.paused ? s.get(key) : 'DOWN')))
}

/** A port nothing listens on (bound and released: refused until someone takes it). */
/** The values of `key` once they equal `expected`, or after `ms`: a Redlock unlock()
 *  resolves once a quorum answered, and the last deletes may land a moment later. */
export async function settledValuesOn(servers, key, expected, ms = 1000) {
  const end = Date.now() + ms
  let vals = await valuesOn(servers, key)
  while (JSON.stringify(vals) !== JSON.stringify(expected) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 10))
    vals = await valuesOn(servers, key)
  }
  return vals
}

/** The directory of this harness's logs, pid files and config files. */
export const harnessDir = workDir

export const unusedPort = freePort
