// Real PostgreSQL servers for the PostgreSQL tests (not a test file: node --test only picks
// *.test.mjs). Each server gets its own data directory in a temp directory, listens on a free
// loopback port chosen here (never 5432: a shared server may run there) and on a unix socket in
// that temp directory, and is stopped at the end.
//
//   const pg = await usePostgres({ timezone: 'America/New_York' })  // started now, stopped by after()
//   pg.port, pg.url, pg.options ({ host, port, user, database }), pg.label ('127.0.0.1:<port>')
//   await pg.query('select $1::int as n', [1])      // rows, through the `postgres` package
//   await pg.stop() / pg.start()                     // pg_ctl stop -m fast / start (same port, same data)
//   await pg.kill()                                  // SIGKILL the postmaster and its children
//   pg.pause() / pg.resume()                         // SIGSTOP / SIGCONT the postmaster and its children
//   await pg.createRole('alice', 'pw')               // a role that must log in with a password (scram)
//
// The binaries come from PG_BIN_DIR, else the newest /usr/lib/postgresql/<n>/bin, else PATH. If
// none is found the suite fails loudly (.ci/run installs them): it is never skipped. As root
// (CI and the dev machines) the server runs as the `postgres` OS user (PostgreSQL refuses to run
// as root); as anyone else it runs as that user.
import { after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import postgres from 'postgres'

// ---- binaries

function findBinDir() {
  const has = (dir) => ['initdb', 'pg_ctl', 'postgres'].every((b) => fs.existsSync(path.join(dir, b)))
  if (process.env.PG_BIN_DIR) {
    if (!has(process.env.PG_BIN_DIR)) throw new Error(`PG_BIN_DIR=${process.env.PG_BIN_DIR} lacks initdb, pg_ctl or postgres`)
    return process.env.PG_BIN_DIR
  }
  const root = '/usr/lib/postgresql'
  let versions = []
  try {
    versions = fs
      .readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v) && has(path.join(root, v, 'bin')))
      .sort((a, b) => Number(b) - Number(a))
  } catch {}
  if (versions.length > 0) return path.join(root, versions[0], 'bin')
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && has(dir)) return fs.realpathSync(path.dirname(fs.realpathSync(path.join(dir, 'initdb'))))
  }
  throw new Error(
    'The PostgreSQL test suite needs the PostgreSQL server binaries (initdb, pg_ctl, postgres): none in PG_BIN_DIR, ' +
      '/usr/lib/postgresql/*/bin or PATH. .ci/run installs them; on Debian/Ubuntu: apt-get install postgresql',
  )
}

export const PG_BIN = findBinDir()
const bin = (name) => path.join(PG_BIN, name)
export const PG_VERSION = execFileSync(bin('postgres'), ['--version'], { encoding: 'utf8' }).trim()

// ---- who runs the server

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
let runAs = null // { uid, gid } of the postgres OS user when we are root
if (isRoot) {
  let uid, gid
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
  } catch (e) {
    throw new Error(`running as root, the PostgreSQL tests need a 'postgres' OS user to run the server as (useradd -r postgres): ${e.message}`)
  }
  runAs = { uid, gid }
}

/** Runs a PostgreSQL program (as the postgres user when we are root); resolves { code, stdout, stderr }. */
function runPg(name, args, { timeout = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, LC_ALL: 'C', LANG: 'C' }
    delete env.PGTZ
    delete env.PGDATA
    delete env.PGPORT
    delete env.PGHOST
    const opts = { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: workDir }
    if (runAs) {
      opts.uid = runAs.uid
      opts.gid = runAs.gid
      env.HOME = workDir
      env.USER = env.LOGNAME = 'postgres'
    }
    const child = spawn(bin(name), args, opts)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

function chownToPg(p) {
  if (runAs) fs.chownSync(p, runAs.uid, runAs.gid)
}

// ---- the temp directory, and clean-up whatever happens

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-pg-'))
fs.chmodSync(workDir, 0o755)
chownToPg(workDir)
const live = new Set()

/** Pids of the direct children of `pid` (Linux /proc; `ps` elsewhere). */
function childrenOf(pid) {
  const out = []
  try {
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue
      let stat
      try {
        stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8')
      } catch {
        continue
      }
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse after the last ')'
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(rest[1]) === pid) out.push(Number(d))
    }
    return out
  } catch {
    try {
      return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
        .split('\n')
        .map((s) => Number(s.trim()))
        .filter((n) => n > 0)
    } catch {
      return []
    }
  }
}

const alive = (pid) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return e.code === 'EPERM'
  }
}

function signalTree(pid, sig) {
  const kids = childrenOf(pid)
  for (const p of [pid, ...kids]) {
    try {
      process.kill(p, sig)
    } catch {}
  }
  return kids
}

function killAllNow() {
  for (const s of live) {
    const pid = s.pid
    if (pid) signalTree(pid, 'SIGKILL')
  }
}
process.on('exit', () => {
  killAllNow()
  try {
    fs.rmSync(workDir, { recursive: true, force: true })
  } catch {}
})
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAllNow()
    process.kill(process.pid, sig)
  })
}
// If this process is SIGKILLed (a runner's timeout), a watchdog kills what is left: the
// postmaster of every data directory (its pid is the first line of postmaster.pid, and its
// children die with it, as they watch the postmaster) and removes the temp directory.
{
  const watchdog = spawn(
    '/bin/sh',
    [
      '-c',
      'while kill -0 "$0" 2>/dev/null; do sleep 1; done; ' +
        'for f in "$1"/*/data/postmaster.pid; do [ -f "$f" ] && p=$(head -n 1 "$f") && [ -n "$p" ] && kill -CONT "$p" 2>/dev/null; [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done; ' +
        'sleep 1; rm -rf "$1"',
      String(process.pid),
      workDir,
    ],
    { stdio: 'ignore', detached: true },
  )
  watchdog.on('error', () => {})
  watchdog.unref()
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** A free TCP port on 127.0.0.1 (asked from the kernel), never 5432. */
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
    if (port !== 5432) return port
  }
}

// ---- one initdb per test process; every server copies it

let template = null
async function templateDir() {
  if (template) return template
  template = (async () => {
    const dir = path.join(workDir, 'template')
    fs.mkdirSync(dir, { mode: 0o700 })
    chownToPg(dir)
    const r = await runPg('initdb', ['-D', dir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'])
    if (r.code !== 0) throw new Error(`initdb failed (code ${r.code}):\n${r.stdout}\n${r.stderr}`)
    return dir
  })()
  return template
}

let serial = 0
const HARNESS_APP = 'oxlock-test-harness'

export class PostgresServer {
  /** `timezone`: the server's default zone (postgresql.conf `timezone`), e.g. 'America/New_York'. */
  constructor(port, { timezone = 'UTC', settings = {} } = {}) {
    this.port = port
    this.timezone = timezone
    this.settings = settings
    this.dir = path.join(workDir, `pg-${port}-${++serial}`)
    this.dataDir = path.join(this.dir, 'data')
    this.logFile = path.join(this.dir, 'server.log')
    this.pid = null
    this.paused = false
    this._pausedPids = []
    this._sql = null
  }

  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  get options() {
    return { host: '127.0.0.1', port: this.port, user: 'postgres', database: 'postgres' }
  }

  get label() {
    return `127.0.0.1:${this.port}`
  }

  get running() {
    return this.pid !== null
  }

  /** A postgres:// URL for another role (password URL-encoded). */
  urlFor(user, password) {
    const auth = password === undefined ? encodeURIComponent(user) : `${encodeURIComponent(user)}:${encodeURIComponent(password)}`
    return `postgres://${auth}@127.0.0.1:${this.port}/postgres`
  }

  log() {
    try {
      return fs.readFileSync(this.logFile, 'utf8')
    } catch {
      return ''
    }
  }

  async _init() {
    const tpl = await templateDir()
    fs.mkdirSync(this.dir, { mode: 0o755 })
    chownToPg(this.dir)
    // cp -a keeps the owner (postgres) and the 0700 mode PostgreSQL insists on
    execFileSync('cp', ['-a', tpl, this.dataDir])
    const conf = [
      '',
      '# oxlock tests',
      "listen_addresses = '127.0.0.1'",
      `port = ${this.port}`,
      `unix_socket_directories = '${this.dir}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 200',
      'shared_buffers = 32MB',
      `timezone = '${this.timezone}'`,
      `log_timezone = '${this.timezone}'`,
      "log_min_messages = 'warning'",
      ...Object.entries(this.settings).map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v}'`}`),
      '',
    ].join('\n')
    fs.appendFileSync(path.join(this.dataDir, 'postgresql.conf'), conf)
    // The superuser logs in without a password; every other role needs its password (scram).
    fs.writeFileSync(
      path.join(this.dataDir, 'pg_hba.conf'),
      [
        'local all postgres trust',
        'host all postgres 127.0.0.1/32 trust',
        'local all all scram-sha-256',
        'host all all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    )
    chownToPg(path.join(this.dataDir, 'pg_hba.conf'))
  }

  _readPid() {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
      return pid > 0 ? pid : null
    } catch {
      return null
    }
  }

  /** Starts the server (initdb'd on first start) and waits until a query works. */
  async start() {
    assert.equal(this.pid, null, `postgres on ${this.port} is running already`)
    assert.notEqual(this.port, 5432, 'never touch a shared server on 5432')
    if (!fs.existsSync(this.dataDir)) await this._init()
    const r = await runPg('pg_ctl', ['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', '-s'])
    if (r.code !== 0) {
      const log = this.log()
      const err = new Error(`pg_ctl start on port ${this.port} failed (code ${r.code}):\n${r.stdout}\n${r.stderr}\n${log}`)
      err.addressInUse = /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(log)
      throw err
    }
    const pid = this._readPid()
    assert.ok(pid, `no postmaster.pid after pg_ctl start on ${this.port}`)
    this.pid = pid
    this.paused = false
    live.add(this)
    // pg_ctl -w saw the postmaster ready; a real query says the port is ours and answers.
    const deadline = Date.now() + 20000
    for (;;) {
      try {
        const [row] = await this.query('select pg_backend_pid() as b, current_setting($1) as port', ['port'], { timeout: 3000 })
        assert.equal(Number(row.port), this.port)
        return this
      } catch (e) {
        if (Date.now() > deadline) {
          await this.kill()
          throw new Error(`postgres on ${this.port} started but a query failed for 20 s: ${e.message}\n${this.log()}`)
        }
        await sleep(50)
      }
    }
  }

  async _closeClient() {
    const sql = this._sql
    this._sql = null
    if (sql) await sql.end({ timeout: 0 }).catch(() => {})
  }

  _client() {
    if (this._sql === null) {
      this._sql = postgres({
        host: '127.0.0.1',
        port: this.port,
        user: 'postgres',
        database: 'postgres',
        max: 4,
        idle_timeout: 2,
        connect_timeout: 5,
        prepare: false,
        onnotice: () => {},
        connection: { application_name: HARNESS_APP },
        // keep bigint as a string and timestamps as Date (the package's defaults)
      })
    }
    return this._sql
  }

  /**
   * Runs one statement through a small pool of the `postgres` package and resolves its rows.
   * Rejects after `timeout` ms (and drops the pool, so a paused server leaves nothing stuck).
   */
  async query(text, params = [], { timeout = 10000 } = {}) {
    assert.ok(this.pid !== null, `postgres on ${this.port} is not running`)
    const sql = this._client()
    let timer
    try {
      return await Promise.race([
        sql.unsafe(text, params),
        new Promise((_, reject) => {
          timer = setTimeout(() => {
            this._closeClient()
            reject(new Error(`postgres ${this.label}: no answer to ${JSON.stringify(text.slice(0, 60))} within ${timeout} ms`))
          }, timeout)
        }),
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  /** A client of the `postgres` package for this server (the caller ends it). */
  client(options = {}) {
    return postgres({ host: '127.0.0.1', port: this.port, user: 'postgres', database: 'postgres', max: 1, connect_timeout: 5, onnotice: () => {}, ...options })
  }

  /** pg_ctl stop -m fast: a clean shutdown; waits until it is down. */
  async stop() {
    if (this.pid === null) return
    this.resume()
    await this._closeClient()
    const r = await runPg('pg_ctl', ['stop', '-D', this.dataDir, '-m', 'fast', '-w', '-t', '60', '-s'])
    if (r.code !== 0 && alive(this.pid)) throw new Error(`pg_ctl stop on ${this.port} failed: ${r.stdout}${r.stderr}`)
    await this._waitGone(this.pid)
    this.pid = null
    live.delete(this)
  }

  async _waitGone(pid, ms = 20000) {
    const end = Date.now() + ms
    while (alive(pid)) {
      if (Date.now() > end) throw new Error(`postgres pid ${pid} on ${this.port} is still alive after ${ms} ms`)
      await sleep(20)
    }
  }

  /** SIGKILL the postmaster and its children (a crash); waits until they are gone. */
  async kill() {
    const pid = this.pid
    if (pid === null) return
    await this._closeClient()
    const kids = signalTree(pid, 'SIGKILL')
    for (const p of this._pausedPids) {
      try {
        process.kill(p, 'SIGKILL')
      } catch {}
    }
    this._pausedPids = []
    this.paused = false
    await this._waitGone(pid)
    for (const k of kids) await this._waitGone(k, 5000).catch(() => {})
    this.pid = null
    live.delete(this)
  }

  /** SIGSTOP the postmaster and its children: connections are accepted by the kernel, nothing answers. */
  pause() {
    assert.ok(this.pid !== null, `postgres on ${this.port} is not running`)
    // children first, so the postmaster does not see them stop and react
    const kids = childrenOf(this.pid)
    for (const k of kids) {
      try {
        process.kill(k, 'SIGSTOP')
      } catch {}
    }
    try {
      process.kill(this.pid, 'SIGSTOP')
    } catch {}
    // a child forked between the listing and the stop
    for (const k of childrenOf(this.pid)) {
      if (!kids.includes(k)) {
        kids.push(k)
        try {
          process.kill(k, 'SIGSTOP')
        } catch {}
      }
    }
    this._pausedPids = kids
    this.paused = true
  }

  /** SIGCONT. Safe to call when not paused. */
  resume() {
    if (this.pid === null || !this.paused) return
    try {
      process.kill(this.pid, 'SIGCONT')
    } catch {}
    for (const k of new Set([...this._pausedPids, ...childrenOf(this.pid)])) {
      try {
        process.kill(k, 'SIGCONT')
      } catch {}
    }
    this._pausedPids = []
    this.paused = false
  }

  /** Stop (clean) and start again on the same port with the same data. */
  async restart() {
    await this.stop()
    return this.start()
  }

  /**
   * A role that logs in with `password` (scram-sha-256 over TCP), allowed to create tables in
   * the public schema and to use the sequences there.
   */
  async createRole(name, password) {
    const ident = `"${name.replace(/"/g, '""')}"`
    const lit = `'${password.replace(/'/g, "''")}'`
    await this.query(`drop role if exists ${ident}`).catch(() => {})
    await this.query(`create role ${ident} login password ${lit}`)
    await this.query(`grant all on schema public to ${ident}`)
    return { user: name, password, url: this.urlFor(name, password) }
  }

  /**
   * The row of the `type: 'postgres'` lock table for `key` (its UTF-8 bytes), as
   * { token, leftMs } (leftMs: expires_at − the database's now(), in ms), or null when there is
   * none (or no table yet).
   */
  async lockRow(key, table = 'oxlock_locks') {
    try {
      const rows = await this.query(
        `select token, extract(epoch from (expires_at - now())) * 1000 as left_ms from "${table}" where key = convert_to($1, 'UTF8')`,
        [key],
      )
      if (rows.length === 0) return null
      return { token: rows[0].token, leftMs: Number(rows[0].left_ms) }
    } catch (e) {
      if (e.code === '42P01') return null // undefined_table
      throw e
    }
  }

  /** Rows of the lock table (key as text), or [] when the table does not exist. */
  async lockRows(table = 'oxlock_locks') {
    try {
      return await this.query(`select convert_from(key, 'UTF8') as key, token from "${table}" order by key`)
    } catch (e) {
      if (e.code === '42P01') return []
      throw e
    }
  }

  /** Client backends of this server other than the harness's own (pid, application_name, state, query). */
  async backends() {
    return this.query(
      "select pid, usename, application_name, state, query from pg_stat_activity where backend_type = 'client backend' and application_name <> $1",
      [HARNESS_APP],
    )
  }
}

/** Starts one server on a fresh free port (retrying on a port conflict). */
export async function startPostgres(opts = {}) {
  for (let tries = 0; ; tries++) {
    const s = new PostgresServer(await freePort(), opts)
    try {
      return await s.start()
    } catch (e) {
      if (!e.addressInUse || tries >= 5) throw e
      fs.rmSync(s.dir, { recursive: true, force: true })
    }
  }
}

/**
 * Starts a server and registers an after() hook (of the enclosing suite, or of the file at top
 * level) that stops it, whether the tests passed or not.
 */
export async function usePostgres(opts = {}) {
  const s = await startPostgres(opts)
  after(async () => {
    await s.kill()
    fs.rmSync(s.dir, { recursive: true, force: true })
  })
  return s
}

/** Stops every server started by this process. */
export async function stopAll() {
  await Promise.all([...live].map((s) => s.kill()))
}

export const unusedPort = freePort
