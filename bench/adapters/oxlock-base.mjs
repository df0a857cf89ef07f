// The oxlock of another checkout, for before/after comparisons in one run:
// OXLOCK_BENCH_BASE=/path/to/built/checkout node bench/run.mjs adds it as 'oxlock-base'.
const base = process.env.OXLOCK_BENCH_BASE
if (!base) throw new Error('oxlock-base needs OXLOCK_BENCH_BASE (a built oxlock checkout)')
process.env.OXLOCK_BENCH_SUBJECT = `${base}/index.js`
const adapter = await import('./oxlock.mjs')

export const name = 'oxlock-base'
export const memory = adapter.memory
export const redis = adapter.redis
