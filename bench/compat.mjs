// Drop-in entry points against a plain ioredis implementation of the same commands:
//   C1 fast-locky: lock + unlock of a batch of 100 resources (one Locky / one pipeline each way)
//   C2 exclusive-lock: acquire + release, one at a time
// Each (library, round) runs in its own child process, rounds interleaved; medians and
// per-round ratios. Usage: node bench/compat.mjs [--rounds 5] [--ms 2000]
import { spawn, execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { mkdtempSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))
const Redis = require('ioredis')

const BATCH = 100
const RELEASE = 'if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end return 0'

// ---- the child: one library, one scenario, for `ms` milliseconds; prints ops/s
async function child(lib, scenario, port, ms) {
  let op
  let done = async () => {}
  if (scenario === 'C1') {
    const items = Array.from({ length: BATCH }, (_, i) => ({ resource: `r${i}`, locker: 'me' }))
    const resources = items.map((i) => i.resource)
    if (lib === 'oxlock') {
      const Locky = require('../compat/fast-locky.js')
      const l = new Locky({ redis: { host: '127.0.0.1', port }, ttl: 10000 })
      op = async () => {
        await l.lock(items)
        await l.unlock(resources)
      }
      done = () => l.close()
    } else {
      const r = new Redis({ host: '127.0.0.1', port })
      const key = (res) => `lock:resource:${res}`
      op = async () => {
        const p = r.pipeline()
        for (const i of items) p.sadd('lock:currents', key(i.resource)).set(key(i.resource), i.locker, 'NX', 'PX', 10000)
        await p.exec()
        const q = r.pipeline()
        for (const res of resources) q.srem('lock:currents', key(res)).del(key(res))
        await q.exec()
      }
      done = () => r.quit()
    }
  } else {
    if (lib === 'oxlock') {
      const ExclusiveLock = require('../compat/exclusive-lock.js')
      const e = new ExclusiveLock({ name: 'bench', cache_connection: { host: '127.0.0.1', port } })
      op = async () => {
        if (!(await e.acquire())) throw new Error('not acquired')
        await e.release()
      }
      done = () => e.close()
    } else {
      const r = new Redis({ host: '127.0.0.1', port })
      r.defineCommand('release', { numberOfKeys: 1, lua: RELEASE })
      op = async () => {
        if ((await r.set('exclusive-lock:bench', '1', 'PX', 3000, 'NX')) !== 'OK') throw new Error('not acquired')
        await r.release('exclusive-lock:bench', '1')
      }
      done = () => r.quit()
    }
  }
  for (let i = 0; i < 50; i++) await op() // warm-up
  let n = 0
  const t0 = performance.now()
  while (performance.now() - t0 < ms) {
    await op()
    n++
  }
  const rate = (n * 1000) / (performance.now() - t0)
  await done()
  process.stdout.write(JSON.stringify({ rate }) + '\n')
}

// ---- the runner
async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function runChild(args) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()).rate) : reject(new Error(`child ${args} exited ${code}`))))
  })
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main() {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, ms: { type: 'string', default: '2000' } } })
  const rounds = Number(values.rounds)
  const port = await freePort()
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oxlock-bench-compat-'))
  const server = spawn(process.env.REDIS_SERVER_BIN || 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
  const stop = () => {
    server.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', stop)
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => 50 })
  for (let i = 0; i < 100; i++) {
    try {
      await probe.connect()
      if ((await probe.ping()) === 'PONG') break
    } catch {
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  probe.disconnect()
  const load = () => os.loadavg()[0].toFixed(2)
  const lines = [`node bench/compat.mjs --rounds ${rounds} --ms ${values.ms}; ${execFileSync('node', ['--version']).toString().trim()}, load ${load()} at start`, '']
  for (const [sc, title] of [
    ['C1', `fast-locky: lock + unlock of a batch of ${BATCH} resources (batches/s)`],
    ['C2', 'exclusive-lock: acquire + release (cycles/s)'],
  ]) {
    const rates = { oxlock: [], ioredis: [] }
    for (let r = 0; r < rounds; r++) {
      for (const lib of r % 2 === 0 ? ['oxlock', 'ioredis'] : ['ioredis', 'oxlock']) rates[lib].push(await runChild([lib, sc, String(port), values.ms]))
    }
    const ratios = rates.oxlock.map((x, i) => x / rates.ioredis[i])
    lines.push(`### ${sc}: ${title}`, '', '| library | median | ratio oxlock / ioredis (median; min–max) |', '|---|---:|---|')
    lines.push(`| oxlock | ${median(rates.oxlock).toFixed(0)} | ${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}) |`)
    lines.push(`| plain ioredis, same commands | ${median(rates.ioredis).toFixed(0)} | |`, '')
  }
  lines.push(`load ${load()} at the end`)
  process.stdout.write(lines.join('\n') + '\n')
  stop()
}

if (process.argv[2] === 'child') await child(process.argv[3], process.argv[4], Number(process.argv[5]), Number(process.argv[6]))
else await main()
