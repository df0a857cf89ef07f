// A real MongoDB-wire server for the MongoStorage tests (not a test file: node --test only
// picks *.test.mjs): SecantusDB (PyPI `SecantusDB==0.7.0b3`, GPL-2.0, a beta server on
// WiredTiger), run as a separate process, never linked or shipped. scripts/test.sh installs it
// into a venv under node_modules/.cache/secantus. Each server runs in the foreground as a
// child of the test process, on a free loopback port chosen here, with its data in memory
// (`--storage-path :memory:`, a temporary directory under our own work directory).
//
//   const [server] = await useMongo(1)     // started now, stopped by an after() hook
//   server.url                              // mongodb://127.0.0.1:<port>
//   server.kill() / .stop() / await .pause() / .resume() / .restart() / .start()
//   const client = await server.client()    // a Node `mongodb` driver client, closed after()
//
// If the server is missing the suite fails loudly (scripts/test.sh installs it): it is never
// skipped. SECANTUSD_BIN overrides the binary.
import { after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = process.env.SECANTUSD_BIN || path.join(ROOT, 'node_modules/.cache/secantus/bin/secantusd-py')

if (!fs.existsSync(BIN)) {
  throw new Error(
    `The MongoDB test suite needs SecantusDB's server at ${BIN}: scripts/test.sh installs it ` +
      `(python3 -m venv node_modules/.cache/secantus && node_modules/.cache/secantus/bin/pip install SecantusDB==0.7.0b3), ` +
      `or set SECANTUSD_BIN.`,
  )
}
export const MONGO_SERVER_BIN = BIN

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-mongo-'))
const live = new Set()
const clients = new Set()

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
// If this process is SIGKILLed (a runner's timeout), a watchdog kills what is left by PID
// (each server's pid file in workDir, removed when the harness stops it) and removes workDir.
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

/** A free TCP port on 127.0.0.1 (asked from the kernel), never 27017. */
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
    if (port !== 27017) return port
  }
}

export class MongoServer {
  constructor(port) {
    this.port = port
    this.proc = null
    this.paused = false
    this.logFile = path.join(workDir, `secantus-${port}.log`)
    this.pidFile = path.join(workDir, `secantus-${port}.pid`)
    this.tmpDir = path.join(workDir, `tmp-${port}`)
  }

  get url() {
    return `mongodb://127.0.0.1:${this.port}`
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

  /** Starts the server on this.port and waits until its log says it is listening there. */
  async start() {
    assert.equal(this.proc, null, `the server on ${this.port} is running already`)
    assert.notEqual(this.port, 27017, 'never touch a shared server on 27017')
    fs.rmSync(this.logFile, { force: true })
    fs.rmSync(this.tmpDir, { recursive: true, force: true })
    fs.mkdirSync(this.tmpDir)
    const log = fs.openSync(this.logFile, 'w')
    let proc
    try {
      proc = spawn(BIN, ['--host', '127.0.0.1', '--port', String(this.port), '--storage-path', ':memory:', '--log-level', 'INFO'], {
        stdio: ['ignore', log, log],
        // ':memory:' is a temporary directory: ours, so a killed server leaves nothing behind.
        env: { ...process.env, TMPDIR: this.tmpDir },
        cwd: this.tmpDir,
        detached: false,
      })
    } finally {
      fs.closeSync(log)
    }
    proc.unref()
    this.proc = proc
    this.paused = false
    live.add(this)
    fs.writeFileSync(this.pidFile, String(proc.pid))
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
    const ready = new RegExp(`listening on 127\\.0\\.0\\.1:${this.port}\\b`)
    const deadline = Date.now() + 30000
    for (;;) {
      if (exited !== null) {
        this._gone()
        const err = new Error(`the server on port ${this.port} exited before listening (${JSON.stringify(exited)}):\n${this.log()}`)
        err.addressInUse = /address already in use|errno 98/i.test(this.log())
        throw err
      }
      if (ready.test(this.log())) return this
      if (Date.now() > deadline) {
        await this.kill()
        throw new Error(`the server on port ${this.port} did not listen within 30 s:\n${this.log()}`)
      }
      await sleep(25)
    }
  }

  _signal(sig) {
    if (this.proc === null) return
    try {
      this.proc.kill(sig)
    } catch {}
  }

  _gone() {
    this.proc = null
    this.paused = false
    live.delete(this)
    fs.rmSync(this.pidFile, { force: true })
  }

  /** SIGKILL, and waits for the process to be gone (the port is then refused). */
  async kill() {
    const proc = this.proc
    if (proc === null) return
    this._signal('SIGKILL')
    proc.ref() // the wait for its exit must keep the event loop alive
    await proc.exited
    this._gone()
  }

  /** SIGTERM (a clean shutdown), SIGKILL after 10 s; waits for the process to be gone. */
  async stop() {
    const proc = this.proc
    if (proc === null) return
    this.resume()
    this._signal('SIGTERM')
    proc.ref()
    const timer = setTimeout(() => this._signal('SIGKILL'), 10000)
    await proc.exited
    clearTimeout(timer)
    this._gone()
  }

  /**
   * SIGSTOP, and waits until every thread of the server has stopped: the stop lands a moment
   * after the signal, and a request sent in between is still answered. Then the port still
   * accepts connections (kernel backlog) but nothing answers.
   */
  async pause() {
    assert.ok(this.proc, `the server on ${this.port} is not running`)
    this._signal('SIGSTOP')
    this.paused = true
    const tasks = `/proc/${this.proc.pid}/task`
    if (!fs.existsSync(tasks)) return sleep(100)
    const stopped = () =>
      fs.readdirSync(tasks).every((t) => {
        try {
          // "pid (comm) S ...": the state follows the last ')'.
          const stat = fs.readFileSync(`${tasks}/${t}/stat`, 'utf8')
          return /^[Tt]/.test(stat.slice(stat.lastIndexOf(')') + 2))
        } catch {
          return true // a thread that is gone answers nothing
        }
      })
    const deadline = Date.now() + 5000
    while (!stopped()) {
      assert.ok(Date.now() < deadline, `the server on ${this.port} did not stop within 5 s of SIGSTOP`)
      await sleep(2)
    }
  }

  /** SIGCONT. Safe to call when not paused. */
  resume() {
    if (this.proc === null) return
    this._signal('SIGCONT')
    this.paused = false
  }

  /** Kill (if running) then start again on the same port (its data is gone: in memory). */
  async restart() {
    await this.kill()
    const deadline = Date.now() + 10000
    for (;;) {
      try {
        return await this.start()
      } catch (e) {
        if (!e.addressInUse || Date.now() > deadline) throw e
        await sleep(100)
      }
    }
  }

  /** A connected client of the Node `mongodb` driver, with short timeouts, closed after(). */
  async client() {
    const { MongoClient } = await import('mongodb')
    const c = new MongoClient(this.url, { serverSelectionTimeoutMS: 3000, connectTimeoutMS: 2000, socketTimeoutMS: 5000 })
    await c.connect()
    clients.add(c)
    return c
  }
}

/** Starts one server on a fresh free port (retrying on a port conflict). */
export async function startMongo() {
  for (let tries = 0; ; tries++) {
    const s = new MongoServer(await freePort())
    try {
      return await s.start()
    } catch (e) {
      if (!e.addressInUse || tries >= 5) throw e
    }
  }
}

/**
 * Starts `n` servers and registers an after() hook (of the enclosing suite, or of the file at
 * top level) that closes the helper clients and kills the servers, whether the tests passed
 * or not.
 */
export async function useMongo(n = 1) {
  const servers = await Promise.all(Array.from({ length: n }, () => startMongo()))
  after(async () => {
    await Promise.allSettled([...clients].map((c) => c.close(true)))
    clients.clear()
    await Promise.all(servers.map((s) => s.kill()))
  })
  return servers
}

/** The server's clock now (hello's localTime), as epoch ms. */
export async function serverNow(client) {
  const r = await client.db('admin').command({ hello: 1 })
  return r.localTime.getTime()
}
