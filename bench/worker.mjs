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

import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'

export const S1_KEYS = Array.from({ length: 1024 }, (_, i) => `k${i}`)
export const S2_KEY = 'hot'
export const S2_TASKS = 256
export const S4_TASKS = 256
export const S4_KEYS = Array.from({ length: S4_TASKS }, (_, i) => `c${i}`)
export const S5_KEY = 'hot'
export const S5_TASKS = 64

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

// checks: the scenario returns { checked, violations[, giveUps] } for each batch.
export const SCENARIOS = {
  S1: { backend: 'memory', run: s1, minOps: 1000 },
  S2: { backend: 'memory', run: s2, minOps: 4 * S2_TASKS, checks: true },
  S3: { backend: 'redis', nodes: 1, run: s3, minOps: 200 },
  S4: { backend: 'redis', nodes: 1, run: s4, minOps: 4 * S4_TASKS },
  S5: { backend: 'redis', nodes: 1, run: s5, minOps: 4 * S5_TASKS, checks: true },
  S6a: { backend: 'redis', nodes: 3, run: s3, minOps: 200 },
  S6b: { backend: 'redis', nodes: 3, run: s4, minOps: 4 * S4_TASKS },
}

export class ExclusionViolation extends Error {
  constructor(holders) {
    super(`mutual exclusion violated: ${holders} holders at once`)
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

  const batches = []
  for (let b = 0; b < o.batches; b++) {
    gc()
    batches.push((await run(batchOps, null)).rate * 1000)
  }

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
    a = await mod.redis(nodes.slice(0, sc.nodes), REDIS_SETTINGS)
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
