// One measurement in its own process: node bench/worker.mjs <lib> <scenario> [--flags]
// Warms up (and sizes the batches from the warm-up rate), runs timed throughput batches
// without per-op timing, then latency batches that time every op. Prints one JSON line.
//
// Adding a scenario: write a function (adapter, n, out) below that runs n ops, register it
// in SCENARIOS with its backend (the adapter factory it needs, e.g. 'memory' or 'redis'),
// and give each adapter in bench/adapters/ the method it calls.
//
// Redis scenarios get the servers from `--redis host:port,host:port,...` (bench/run.mjs
// starts them); a scenario with `nodes: N` hands the first N to the adapter's factory as
// `redis(nodes, REDIS_SETTINGS)`.

import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'

export const S1_KEYS = Array.from({ length: 1024 }, (_, i) => `k${i}`)
export const S2_KEY = 'hot'
export const S2_TASKS = 256
export const S4_TASKS = 256
export const S4_KEYS = Array.from({ length: S4_TASKS }, (_, i) => `c${i}`)
export const S5_KEY = 'hot'
export const S5_TASKS = 64
// S5x: S5X_PROCS processes x S5X_TASKS tasks on one key, over one Redis node. The critical
// section's shared state lives in Redis (S5X_CHECK), so a second holder in another process
// is seen too.
export const S5X_KEY = 'hot'
export const S5X_PROCS = 4
export const S5X_TASKS = 16
export const S5X_CHECK = { holders: 's5x:holders', counter: 's5x:n' }
// S5x libraries whose adapter uses other settings than REDIS_SETTINGS (see adapters/).
export const S5X_SETTINGS = { 'oxlock-rd1000': { retryDelay: 1000 } }

// Every Redis library gets the same ttl and retry policy (its own option names; see the
// adapters). The retry budget is far beyond any wait here, so nobody should give up.
export const REDIS_SETTINGS = {
  ttl: 10000, // ms; no lock expires during a run
  retryCount: 100000, // attempts after the first (redis-semaphore: acquireTimeout = retryCount * retryDelay)
  retryDelay: 10, // ms between attempts
  retryJitter: 5, // ± ms (redis-semaphore and the raw loop have no jitter: a fixed 10 ms)
}

// S1: n sequential lock+unlock cycles on distinct keys k0..k1023 (cycling).
function s1(a, n, out) {
  return a.s1(S1_KEYS, n, out)
}

// S1u / S2u: S1 and S2 through the library's function-scoped call (oxlock's using(key, fn));
// a library whose S1/S2 already have that shape (async-lock's acquire(key, fn)) runs them.
const s1u = (a, n, out) => (a.s1u ?? a.s1)(S1_KEYS, n, out)
const s2u = (a, n, out) => s2({ s2Task: a.s2uTask ?? a.s2Task }, n, out)

// S5's shared state. Tasks take operations with st.take() (-1: none left). st.section()
// is S2's critical section: it throws if two tasks hold the lock at once, and yields once
// (await) while held. st.giveUp(err) counts a lock() that rejected (retry budget
// exhausted, or any other error); the task then calls lock() again for the same operation,
// so n critical sections still complete.
function contended(n) {
  const st = {
    n,
    started: 0,
    done: 0,
    holders: 0,
    giveUps: 0,
    giveUpErrors: {},
    t0: performance.now(),
    tStop: 0, // when the last operation was taken
    doneAtStop: 0, // critical sections completed by then
    take() {
      if (st.started >= n) return -1
      if (++st.started === n) {
        st.tStop = performance.now()
        st.doneAtStop = st.done
      }
      return st.started - 1
    },
    async section() {
      if (++st.holders > 1) throw new ExclusionViolation(st.holders)
      await null
      st.holders--
      st.done++
    },
    giveUp(e) {
      st.giveUps++
      const what = `${e?.name ?? 'Error'}${e?.code ? ` ${e.code}` : ''}: ${String(e?.message ?? e).slice(0, 200)}`
      st.giveUpErrors[what] = (st.giveUpErrors[what] ?? 0) + 1
      if (st.giveUps > 1000) throw new Error(`more than 1000 give-ups in one batch; first: ${Object.keys(st.giveUpErrors)[0]}`)
    },
  }
  return st
}

// S2: S2_TASKS concurrent tasks on one key, n critical sections in all. (Its own state
// object, as before the Redis scenarios, so in-memory numbers stay comparable.)
async function s2(a, n, out) {
  const st = {
    n,
    started: 0,
    done: 0,
    holders: 0,
    async section() {
      if (++st.holders > 1) throw new ExclusionViolation(st.holders)
      await null
      st.holders--
      st.done++
    },
  }
  const tasks = []
  for (let i = 0; i < S2_TASKS; i++) tasks.push(a.s2Task(S2_KEY, st, out))
  await Promise.all(tasks)
  if (st.done !== n || st.holders !== 0) throw new Error(`S2 accounting: done ${st.done}/${n}, holders ${st.holders}`)
  return { checked: st.done, violations: 0 }
}

// S3 (and S6a over 3 nodes): n sequential lock+unlock cycles on distinct keys k0..k1023.
function s3(a, n, out) {
  return a.s3(S1_KEYS, n, out)
}

// S4 (and S6b over 3 nodes): S4_TASKS concurrent tasks, each on its own key, n lock+unlock
// cycles in all. out[j]: one whole cycle.
async function s4(a, n, out) {
  const st = { n, started: 0 }
  const tasks = []
  for (let i = 0; i < S4_TASKS; i++) tasks.push(a.s4Task(S4_KEYS[i], st, out))
  await Promise.all(tasks)
}

// S5: S5_TASKS concurrent tasks on one key through Redis, n critical sections in all.
// out[j]: wait from the first lock() call of the operation to acquisition (give-ups and
// the calls after them included). The batch rate is steady-state: critical sections
// completed from the start until the last operation is taken, over that time. The drain
// that follows (the last <= 64 waiters, with fewer and fewer rivals) is checked but not
// timed: with polling retries it is slow and would dominate short batches.
async function s5(a, n, out) {
  const st = contended(n)
  const tasks = []
  for (let i = 0; i < S5_TASKS; i++) tasks.push(a.s5Task(S5_KEY, st, out))
  await Promise.all(tasks)
  if (st.done !== n || st.holders !== 0) throw new Error(`S5 accounting: done ${st.done}/${n}, holders ${st.holders}`)
  return {
    checked: st.done,
    violations: 0,
    giveUps: st.giveUps,
    giveUpErrors: st.giveUpErrors,
    ops: st.doneAtStop,
    ms: st.tStop - st.t0,
  }
}

// S5x, one of the S5X_PROCS processes (bench/run.mjs starts them together): S5X_TASKS tasks
// on S5X_KEY. Each task loops lock -> critical section -> unlock through the adapter's
// s5xTask(key, st). The critical section goes to Redis through a client of its own (not the
// lock's): one round trip `INCR s5x:holders` + `GET s5x:n` (holders must come back 1), one
// round trip `SET s5x:n n+1` + `DECR s5x:holders` (must come back 0). A second holder in any
// process sees holders > 1 (or leaves it above 0), and a lost update shows as s5x:n below
// the number of sections (the runner compares them at the end).
// Phases: a private warm-up (warmCycles cycles on a key of this process's own, a no-op
// section), 'ready' on stdout, 'go' on stdin; then contention on S5X_KEY for warmMs (checked,
// not timed) and the window of windowMs: sections whose unlock returned inside it count
// for the rate, and the wait (lock call -> acquired) of every lock call made inside it is
// kept, also when it acquires in the drain after the window (checked, not timed).
// `seqs` are the counter values this process's sections read inside the window, `times` when
// (ms, performance.timeOrigin + now(): one clock for all the processes): merged over the
// processes they give the order of the sections (runs of one process in a row) and the time
// from one section to the next, within a process and from one process to another.
async function s5xProcess(a, checkNode, o) {
  const Redis = createRequire(import.meta.url)('ioredis')
  const cs = new Redis({ host: checkNode.host, port: checkNode.port })
  await cs.ping()
  const giveUpErrors = {}
  let giveUps = 0
  const giveUp = (e) => {
    giveUps++
    const what = `${e?.name ?? 'Error'}${e?.code ? ` ${e.code}` : ''}: ${String(e?.message ?? e).slice(0, 200)}`
    giveUpErrors[what] = (giveUpErrors[what] ?? 0) + 1
    if (giveUps > 1000) throw new Error(`more than 1000 give-ups; first: ${Object.keys(giveUpErrors)[0]}`)
  }

  // private warm-up: connections, scripts, JIT; nothing touches S5X_KEY or S5X_CHECK
  let warmLeft = o.warmCycles
  const warm = {
    running: () => warmLeft-- > 0,
    acquired() {},
    section: async () => {
      await null
    },
    released() {},
    giveUp,
  }
  await Promise.all(Array.from({ length: S5X_TASKS }, () => a.s5xTask(`warm-${o.proc}`, warm)))

  process.stdout.write('ready\n')
  const rl = createInterface({ input: process.stdin })
  await new Promise((resolve) => rl.once('line', resolve))
  rl.close()
  process.stdin.destroy()

  const tGo = performance.now()
  const ws = tGo + o.warmMs
  const we = ws + o.windowMs
  const waits = []
  const seqs = []
  const times = []
  let holders = 0 // in this process
  let inWindow = 0
  let total = 0
  const st = {
    running: () => performance.now() < we,
    acquired(t) {
      if (t >= ws && t < we) waits.push(performance.now() - t)
    },
    async section() {
      if (++holders > 1) throw new ExclusionViolation(holders)
      const [[e1, h], [e2, n]] = await cs.pipeline().incr(S5X_CHECK.holders).get(S5X_CHECK.counter).exec()
      if (e1 || e2) throw e1 || e2
      if (h !== 1) throw new ExclusionViolation(h, `process ${o.proc}: ${S5X_CHECK.holders} = ${h} on entry`)
      const seq = Number(n ?? 0)
      const now = performance.now()
      if (now >= ws && now < we) {
        seqs.push(seq)
        times.push(performance.timeOrigin + now) // comparable across the processes (one machine)
      }
      const [[e3], [e4, left]] = await cs.pipeline().set(S5X_CHECK.counter, seq + 1).decr(S5X_CHECK.holders).exec()
      if (e3 || e4) throw e3 || e4
      if (left !== 0) throw new ExclusionViolation(left + 1, `process ${o.proc}: ${S5X_CHECK.holders} = ${left} on exit`)
      holders--
    },
    released() {
      total++
      const now = performance.now()
      if (now >= ws && now <= we) inWindow++
    },
    giveUp,
  }
  await Promise.all(Array.from({ length: S5X_TASKS }, () => a.s5xTask(S5X_KEY, st)))
  const drainMs = performance.now() - we
  await cs.quit()
  return {
    proc: o.proc,
    warmMs: o.warmMs,
    windowMs: o.windowMs,
    inWindow,
    total,
    drainMs,
    giveUps,
    giveUpErrors,
    waitsMs: waits.map((w) => Math.round(w * 1000) / 1000),
    seqs,
    times: times.map((t) => Math.round(t * 1000) / 1000),
  }
}

// checks: the scenario returns { checked, violations[, giveUps] } for each batch.
export const SCENARIOS = {
  S1: { backend: 'memory', run: s1, minOps: 1000 },
  S2: { backend: 'memory', run: s2, minOps: 4 * S2_TASKS, checks: true },
  S1u: { backend: 'memory', run: s1u, minOps: 1000 },
  S2u: { backend: 'memory', run: s2u, minOps: 4 * S2_TASKS, checks: true },
  S3: { backend: 'redis', nodes: 1, run: s3, minOps: 200 },
  S4: { backend: 'redis', nodes: 1, run: s4, minOps: 4 * S4_TASKS },
  S5: { backend: 'redis', nodes: 1, run: s5, minOps: 4 * S5_TASKS, checks: true },
  S6a: { backend: 'redis', nodes: 3, run: s3, minOps: 200 },
  S6b: { backend: 'redis', nodes: 3, run: s4, minOps: 4 * S4_TASKS },
  // one of S5X_PROCS processes started together by the runner; its own flags (below)
  S5x: { backend: 'redis', nodes: 1, multi: true },
}

export class ExclusionViolation extends Error {
  constructor(holders, detail) {
    super(`mutual exclusion violated: ${holders} holders at once${detail ? ` (${detail})` : ''}`)
    this.name = 'ExclusionViolation'
  }
}

const gc = globalThis.gc ?? (() => {})

async function measure(sc, a, o) {
  let checked = 0
  let violations = 0
  let giveUps = 0
  const giveUpErrors = {}
  // Runs one batch; returns its rate in ops/ms: n over the elapsed time, or the
  // scenario's own { ops, ms } window (S5).
  const run = async (n, out) => {
    const t = performance.now()
    const r = await sc.run(a, n, out)
    const dt = performance.now() - t
    if (r) {
      checked += r.checked
      violations += r.violations
      if (r.giveUps) {
        giveUps += r.giveUps
        for (const [k, v] of Object.entries(r.giveUpErrors)) giveUpErrors[k] = (giveUpErrors[k] ?? 0) + v
      }
      if (r.ms > 0) return { rate: r.ops / r.ms, dt }
    }
    return { rate: n / Math.max(dt, 0.001), dt }
  }

  // Warm-up: doubling batches until warmupMs is spent; the last rate sizes the batches.
  let n = sc.minOps
  let spent = 0
  let rate // ops per ms
  for (;;) {
    gc()
    const r = await run(n, null)
    spent += r.dt
    rate = r.rate
    const dt = r.dt
    if (spent >= o.warmupMs) break
    if (dt < o.batchMs / 2) n *= 2
  }
  const batchOps = Math.max(sc.minOps, Math.round(rate * o.batchMs))
  // Latency batches: latOps each, or (with --lat-ms) as many as fit in about latMs.
  const latOps = o.latMs > 0 ? Math.max(sc.minOps, Math.min(o.latOps, Math.round(rate * o.latMs))) : o.latOps
  const warmTimed = Math.min(latOps, 5000, batchOps)
  await run(warmTimed, new Float64Array(warmTimed)) // warm the timed path too

  // Memory over the timed batches (issue 13: RSS flat after warm-up), and the process's peak.
  gc()
  const rssWarm = process.memoryUsage.rss()
  const batches = []
  for (let b = 0; b < o.batches; b++) {
    gc()
    batches.push((await run(batchOps, null)).rate * 1000)
  }
  gc()
  const rssAfter = process.memoryUsage.rss()

  const lat = new Float64Array(latOps * o.latBatches)
  const timedRates = []
  for (let b = 0; b < o.latBatches; b++) {
    gc()
    const out = lat.subarray(b * latOps, (b + 1) * latOps)
    timedRates.push((await run(latOps, out)).rate * 1000)
  }
  for (let i = 0; i < lat.length; i++) lat[i] *= 1000 // ms -> µs
  lat.sort()
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]

  return {
    opsPerSec: median(batches),
    batches: batches.map(Math.round),
    batchOps,
    latencyUs: { samples: lat.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: lat[lat.length - 1] },
    timedOpsPerSec: median(timedRates), // with per-op timing: for reference only
    memory: {
      rssWarmMB: rssWarm / 2 ** 20,
      rssAfterMB: rssAfter / 2 ** 20,
      driftPct: ((rssAfter - rssWarm) / rssWarm) * 100,
      cycles: batchOps * o.batches,
      peakRssMB: process.resourceUsage().maxRSS / 1024,
    },
    ...(sc.checks ? { checked, violations } : {}),
    ...(sc.run === s5 ? { giveUps, giveUpErrors } : {}),
  }
}

export function median(xs) {
  const s = [...xs].sort((x, y) => x - y)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'warmup-ms': { type: 'string', default: '400' },
      'batch-ms': { type: 'string', default: '250' },
      batches: { type: 'string', default: '8' },
      'lat-ops': { type: 'string', default: '20000' },
      'lat-batches': { type: 'string', default: '3' },
      'lat-ms': { type: 'string', default: '0' },
      redis: { type: 'string', default: '' },
      // S5x only
      proc: { type: 'string', default: '0' },
      'warm-cycles': { type: 'string', default: '200' },
      'contended-warmup-ms': { type: 'string', default: '500' },
      'window-ms': { type: 'string', default: '2000' },
    },
  })
  const [lib, scenario] = positionals
  const sc = SCENARIOS[scenario]
  if (!lib || !sc) throw new Error(`usage: node bench/worker.mjs <lib> <${Object.keys(SCENARIOS).join('|')}> [flags]`)
  const o = {
    warmupMs: Number(values['warmup-ms']),
    batchMs: Number(values['batch-ms']),
    batches: Number(values.batches),
    latOps: Number(values['lat-ops']),
    latBatches: Number(values['lat-batches']),
    latMs: Number(values['lat-ms']),
  }
  const mod = await import(`./adapters/${lib}.mjs`)
  if (typeof mod[sc.backend] !== 'function') throw new Error(`adapter ${lib} has no '${sc.backend}' backend`)
  let a
  if (sc.backend === 'redis') {
    const nodes = values.redis
      .split(',')
      .filter(Boolean)
      .map((hp) => {
        const i = hp.lastIndexOf(':')
        return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) }
      })
    if (nodes.length < sc.nodes) throw new Error(`${scenario} needs ${sc.nodes} Redis node(s) in --redis host:port,..., got '${values.redis}'`)
    const settings = sc.multi ? { ...REDIS_SETTINGS, ...S5X_SETTINGS[lib] } : REDIS_SETTINGS
    a = await mod.redis(nodes.slice(0, sc.nodes), settings)
    if (sc.multi) {
      const t0 = performance.now()
      const res = await s5xProcess(a, nodes[0], {
        proc: Number(values.proc),
        warmCycles: Number(values['warm-cycles']),
        warmMs: Number(values['contended-warmup-ms']),
        windowMs: Number(values['window-ms']),
      })
      await a.close?.()
      process.stdout.write(JSON.stringify({ lib, scenario, settings, ...res, elapsedMs: Math.round(performance.now() - t0) }) + '\n')
      return
    }
  } else {
    a = await mod[sc.backend]()
  }
  const t0 = performance.now()
  const res = await measure(sc, a, o)
  const leftover = a.stateSize?.()
  await a.close?.()
  process.stdout.write(
    JSON.stringify({ lib, scenario, ...res, leftoverKeys: leftover, elapsedMs: Math.round(performance.now() - t0) }) + '\n',
  )
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(e)
    process.exit(e instanceof ExclusionViolation ? 3 : 1)
  })
}
