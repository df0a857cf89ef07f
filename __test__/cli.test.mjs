// The `oxlock` CLI (cli/main.js) run as a child process against real servers: redis-server
// ×1 and ×3 (Redlock), one with keyspace notifications and one without, and PostgreSQL.
// Checks its output (tables, --json), exit codes, confirmation, colour only on a TTY, and
// `watch` both as event lines and as a live view in a pseudo-terminal (`script`).
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { create } from '../index.mjs'
import { withTimeout, eventually } from './helpers.mjs'
import { useRedis, startRedis, settledValuesOn } from './redis-harness.mjs'
import { usePostgres } from './pg-harness.mjs'

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Runs the CLI; resolves { code, out, err }. `input` is written to its stdin. */
function cli(args, { env = {}, input, timeout = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LOCK_CONFIG: '', ...env }, stdio: 'pipe' })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (err += d))
    const timer = setTimeout(() => {
      p.kill('SIGKILL')
      reject(new Error(`oxlock ${args.join(' ')} did not exit within ${timeout} ms; out ${out} err ${err}`))
    }, timeout)
    p.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
    p.stdin.end(input)
  })
}

/** Runs the CLI in a pseudo-terminal (util-linux `script`); `input` goes to its terminal. */
function cliTty(args, { input = '', timeout = 20000, until } = {}) {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
  return new Promise((resolve, reject) => {
    const p = spawn('script', ['-qefc', command, '/dev/null'], { stdio: 'pipe', env: { ...process.env, LOCK_CONFIG: '', TERM: 'xterm' } })
    let out = ''
    p.stdout.on('data', (d) => {
      out += d
      if (until && until(out)) p.kill('SIGINT')
    })
    const timer = setTimeout(() => {
      p.kill('SIGKILL')
      reject(new Error(`oxlock ${args.join(' ')} (tty) did not exit within ${timeout} ms; out ${out}`))
    }, timeout)
    p.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
    p.stdin.write(input)
  })
}

const managers = []
after(() => withTimeout(Promise.all(managers.map((m) => m.destroy())), 15000, 'destroying the CLI test managers'))
function mk(connection, lockOptions = {}) {
  const m = create({ type: 'redis', connection, lockOptions })
  managers.push(m)
  return m
}

let n = 0
const key = (what) => `cli:${what}:${++n}`

const [single] = await useRedis(1)
await single.cmd('CONFIG', 'SET', 'notify-keyspace-events', 'KEA')
const trio = await useRedis(3)
const url = single.url
const trioArgs = trio.flatMap((s) => ['--url', s.url])

describe('usage', () => {
  test('help lists every command, exit 0; no command is help', async () => {
    for (const args of [['help'], ['--help'], []]) {
      const r = await cli(args)
      assert.equal(r.code, 0)
      for (const c of ['list', 'inspect', 'watch', 'unlock', 'bench']) assert.match(r.out, new RegExp(`\\b${c}\\b`))
    }
  })

  test('usage and config errors exit 2 with a message naming what is wrong', async () => {
    const cases = [
      [['frobnicate', '--url', url], /unknown command frobnicate/],
      [['list'], /no store given: pass --url, --config <file> or set LOCK_CONFIG/],
      [['unlock', 'k', '--url', url], /--force/],
      [['inspect', '--url', url], /inspect needs a key/],
      [['list', '--limit', 'x', '--url', url], /--limit must be a number/],
      [['list', '--url', 'http://x'], /--url: expected redis/],
      [['list', '--config', '/nonexistent/oxlock.json'], /--config: cannot read/],
      [['list', '--bogus'], /Unknown option '--bogus'/],
    ]
    for (const [args, message] of cases) {
      const r = await cli(args)
      assert.equal(r.code, 2, `oxlock ${args.join(' ')}: ${r.err}`)
      assert.match(r.err, message)
    }
    const broken = await cli(['list'], { env: { LOCK_CONFIG: '{"type":"redis","connection":"redis://:hunter2@127.0.0.1:1"' } })
    assert.equal(broken.code, 2)
    assert.match(broken.err, /LOCK_CONFIG is not JSON/)
    assert.doesNotMatch(broken.err, /hunter2/, 'the JSON error never quotes the text (it may hold a password)')
    const bad = await cli(['list'], { env: { LOCK_CONFIG: '{"type":"redis","connection":{"prot":1}}' } })
    assert.equal(bad.code, 2)
    assert.match(bad.err, /connection\.prot/)
  })
})

describe('on one Redis server', () => {
  test('list: held locks with ttl, token prefix, fence and nodes; side keys, plain keys and other types are not locks', async () => {
    const m = mk(url)
    const a = await m.lock(key('list-a'), 30000)
    const b = await m.lock(key('list-b'), 8000)
    await single.cmd('SET', 'cli:plain', 'v')
    await single.cmd('HSET', 'cli:hash', 'f', 'v')
    const r = await cli(['list', 'cli:list-*', '--url', url])
    assert.equal(r.code, 0, r.err)
    const lines = r.out.trim().split('\n')
    assert.match(lines[0], /^KEY\s+TTL\s+TOKEN\s+FENCE\s+NODES\s+WAITED$/)
    assert.equal(lines.length, 3, r.out)
    assert.ok(lines[1].startsWith(a.resource) && lines[2].startsWith(b.resource), r.out)
    assert.ok(lines[1].includes(`${a.value.slice(0, 8)}…`) && lines[1].includes(String(a.fence)) && lines[1].includes('1/1'), lines[1])
    assert.doesNotMatch(r.out, /\x1b\[/, 'no colour without a terminal')
    const all = await cli(['list', '--json', '--url', url])
    const { locks, failures } = JSON.parse(all.out)
    assert.deepEqual(failures, [])
    const keys = locks.map((l) => l.key)
    assert.ok(keys.includes(a.resource) && keys.includes(b.resource))
    for (const k of keys) assert.doesNotMatch(k, /:fence$|:waiting$|^cli:plain$|^cli:hash$/)
    const la = locks.find((l) => l.key === a.resource)
    assert.equal(la.token, a.value)
    assert.equal(la.fence, a.fence)
    assert.ok(la.ttlMs > 25000 && la.ttlMs <= 30000, `ttlMs ${la.ttlMs}`)
    await a.unlock()
    await b.unlock()
  })

  test('inspect: exit 0 and the node view when locked, exit 3 when not', async () => {
    const m = mk(url)
    const other = mk(url, { retryCount: 0 })
    const k = key('inspect')
    const h = await m.lock(k, 10000)
    await assert.rejects(other.lock(k, 1000)) // leaves the "someone waits" mark
    const r = await cli(['inspect', k, '--json', '--url', url])
    assert.equal(r.code, 0, r.err)
    const v = JSON.parse(r.out)
    assert.equal(v.held, true)
    assert.equal(v.nodes.length, 1)
    assert.equal(v.nodes[0].node, single.label)
    assert.equal(v.nodes[0].token, h.value)
    assert.equal(v.nodes[0].fence, h.fence)
    assert.ok(v.nodes[0].waitingMs > 0, `waitingMs ${v.nodes[0].waitingMs}`)
    await h.unlock()
    const gone = await cli(['inspect', k, '--url', url])
    assert.equal(gone.code, 3)
    assert.match(gone.out, /not locked/)
  })

  test('unlock --force: asks on a terminal (no: exit 4, yes: deleted), refuses without a terminal unless --yes; a waiter gets the key at once', async () => {
    const holder = mk(url)
    const waiter = mk(url, { retryCount: -1, retryDelay: 10000 })
    const k = key('unlock')
    const h = await holder.lock(k, 30000)
    const noTty = await cli(['unlock', k, '--force', '--url', url])
    assert.equal(noTty.code, 2)
    assert.match(noTty.err, /--yes/)
    const declined = await cliTty(['unlock', k, '--force', '--url', url], { input: 'n\n' })
    assert.equal(declined.code, 4, declined.out)
    assert.match(declined.out, new RegExp(`delete ${k} \\(token ${h.value.slice(0, 8)}…, on 1/1 nodes\\)\\? \\[y/N\\]`))
    assert.equal(await single.get(k), h.value)
    // What the prompt confirmed is the holder shown: another holder by then is left alone.
    const { Store } = await import('../cli/store.js')
    const store = new Store({ type: 'redis', connection: url })
    const other = await store.forceUnlock(k, 'a-token-nobody-holds')
    store.close()
    assert.equal(other.value, 0)
    assert.equal(await single.get(k), h.value)
    const waiting = waiter.lock(k, 5000)
    await sleep(300)
    const t0 = Date.now()
    const yes = await cliTty(['unlock', k, '--force', '--url', url], { input: 'y\n' })
    assert.equal(yes.code, 0, yes.out)
    assert.match(yes.out, /deleted .* on 1 of 1 node/)
    const w = await withTimeout(waiting, 5000, 'the waiter, woken by the forced unlock')
    assert.ok(Date.now() - t0 < 4000, 'woken by the unlock, not by its 10 s retry timer')
    await assert.rejects(h.extend(1000), { code: 'E_LOCK_EXPIRED' })
    await h.unlock() // no longer its lock: a no-op, not an error
    assert.equal(await single.get(k), w.value)
    await w.unlock()
    const again = await cli(['unlock', k, '--force', '--yes', '--url', url])
    assert.equal(again.code, 3)
  })

  test('watch (no terminal, --json): one event per line: locked, extended, released, expired', async () => {
    const p = spawn(process.execPath, [CLI, 'watch', 'cli:watch*', '--json', '--interval', '100', '--url', url], { stdio: 'pipe' })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    const exited = new Promise((resolve) => p.on('close', resolve))
    try {
      await sleep(700)
      const m = mk(url)
      const h = await m.lock(key('watch'), 1500)
      await sleep(400)
      await h.extend(3000)
      await sleep(400)
      await h.unlock()
      await m.lock(key('watch'), 500)
      const events = () => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
      await eventually(() => events().some((e) => e.event === 'expired'), 5000, 'an expired event')
      const seen = events().map((e) => `${e.event} ${e.key}`)
      assert.deepEqual(seen, [`locked ${h.resource}`, `extended ${h.resource}`, `released ${h.resource}`, `locked cli:watch:${n}`, `expired cli:watch:${n}`])
      assert.equal(events()[0].token, h.value)
    } finally {
      p.kill('SIGINT')
    }
    assert.equal(await exited, 0, 'SIGINT ends watch with exit code 0')
  })

  test('watch on a terminal: a live, coloured table redrawn as locks come and go; Ctrl-C exits 0', async () => {
    const k = key('live')
    const m = mk(url)
    let h
    const run = cliTty(['watch', 'cli:live*', '--interval', '100', '--url', url], {
      until: (out) => h && out.slice(out.lastIndexOf(k)).length > 0 && out.lastIndexOf('no locks held') > out.lastIndexOf(k),
    })
    await sleep(700)
    h = await m.lock(k, 5000)
    await sleep(500)
    await h.unlock()
    const { code, out } = await run
    assert.equal(code, 0)
    assert.match(out, /\x1b\[H\x1b\[2J/, 'the screen is redrawn')
    assert.match(out, /keyspace notifications/)
    assert.match(out, new RegExp(`\\x1b\\[1m${k}`), 'the key, in bold')
  })

  test('bench: in-memory numbers, and the store when given; --json', async () => {
    const r = await cli(['bench', '--seconds', '0.2', '--json', '--url', url])
    assert.equal(r.code, 0, r.err)
    const rows = JSON.parse(r.out)
    assert.deepEqual(rows.map((x) => x.store), ['inMemory', 'inMemory', 'redis', 'redis'])
    for (const x of rows) assert.ok(x.opsPerSec > 0)
  })

  test('the store from --config and from LOCK_CONFIG', async () => {
    const m = mk(url)
    const h = await m.lock(key('cfg'), 10000)
    const dir = mkdtempSync(path.join(tmpdir(), 'oxlock-cli-'))
    const file = path.join(dir, 'lock.json')
    writeFileSync(file, JSON.stringify({ type: 'redis', connection: single.options }))
    for (const r of [await cli(['inspect', h.resource, '--config', file]), await cli(['inspect', h.resource], { env: { LOCK_CONFIG: JSON.stringify({ type: 'redis', connection: url }) } })]) {
      assert.equal(r.code, 0, r.err)
    }
    await h.unlock()
  })
})

describe('failures', () => {
  test('a wrong password: exit 1, E_AUTH, and the password never printed', async () => {
    const s = await startRedis(['--requirepass', 'right-one'])
    try {
      const r = await cli(['list', '--url', `redis://:s3cr3t-pw@127.0.0.1:${s.port}`])
      assert.equal(r.code, 1)
      assert.match(r.err, /E_AUTH/)
      assert.doesNotMatch(r.out + r.err, /s3cr3t-pw/)
    } finally {
      await s.kill()
    }
  })

  test('a server without keyspace notifications is polled; Redlock nodes: held on 3/3, a node down is reported and the rest listed, all down is exit 1', async () => {
    const m = mk(trio.map((s) => s.url))
    const h = await m.lock(key('trio'), 20000)
    await settledValuesOn(trio, h.resource, [h.value, h.value, h.value])
    const r = await cli(['list', 'cli:trio*', '--json', ...trioArgs])
    assert.equal(r.code, 0, r.err)
    const [l] = JSON.parse(r.out).locks
    assert.deepEqual([l.key, l.heldOn, l.nodes, l.token], [h.resource, 3, 3, h.value])
    const watchRun = spawn(process.execPath, [CLI, 'watch', '--interval', '100', ...trioArgs], { stdio: 'pipe' })
    let head = ''
    watchRun.stdout.on('data', (d) => (head += d))
    await eventually(() => head.includes('watching'), 5000, 'the watch header')
    watchRun.kill('SIGINT')
    assert.match(head, /polling every 100 ms/)
    await trio[2].kill()
    const one = await cli(['list', 'cli:trio*', ...trioArgs])
    assert.equal(one.code, 0)
    assert.match(one.out, /2\/3/)
    assert.match(one.err, new RegExp(`unreachable: ${trio[2].label}: connection refused`))
    await trio[0].kill()
    await trio[1].kill()
    const none = await cli(['list', ...trioArgs])
    const noneInspect = await cli(['inspect', h.resource, ...trioArgs])
    assert.equal(noneInspect.code, 1, `inspect with every node down is a store failure, not "no such lock": ${noneInspect.err}`)
    assert.equal(none.code, 1)
    assert.match(none.err, /the store could not be reached: .*connection refused.*\(E_UNAVAILABLE\)/)
  })
})

describe('on PostgreSQL', async () => {
  const pg = await usePostgres()
  test('list, inspect and unlock --force on the lock table', async () => {
    const empty = await cli(['list', '--url', pg.url])
    assert.equal(empty.code, 0, empty.err)
    assert.match(empty.out, /no locks held/)
    const m = create({ type: 'postgres', connection: pg.url })
    try {
      const h = await m.lock('cli:pg:1', 20000)
      const r = await cli(['list', 'cli:pg:*', '--json', '--url', pg.url])
      assert.equal(r.code, 0, r.err)
      const [l] = JSON.parse(r.out).locks
      assert.deepEqual([l.key, l.token, l.heldOn, l.fence], ['cli:pg:1', h.value, 1, null])
      assert.ok(l.ttlMs > 15000 && l.ttlMs <= 20000)
      assert.equal((await cli(['list', 'cli:pg:2*', '--json', '--url', pg.url])).out.includes('cli:pg:1'), false)
      assert.equal((await cli(['inspect', 'cli:pg:1', '--url', pg.url])).code, 0)
      const u = await cli(['unlock', 'cli:pg:1', '--force', '--yes', '--url', pg.url])
      assert.equal(u.code, 0, u.err)
      assert.equal((await cli(['inspect', 'cli:pg:1', '--url', pg.url])).code, 3)
    } finally {
      await m.destroy()
    }
  })
})

test('the README shows the help text exactly as the CLI prints it', async () => {
  const { readFileSync } = await import('node:fs')
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const r = await cli(['help'])
  assert.ok(readme.includes('```text\n' + r.out + '```'), 'README: the output of `oxlock help` in a text block')
})
