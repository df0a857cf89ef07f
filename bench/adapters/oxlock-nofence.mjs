// oxlock with lockOptions.fencing: false: no fence counter, so acquiring a key is a plain
// `SET NX PX` as in the raw ioredis baseline (which has no fence either), not a script.
process.env.OXLOCK_BENCH_NOFENCE = '1'
const adapter = await import('./oxlock.mjs')

export const name = 'oxlock-nofence'
export const memory = adapter.memory
export const redis = adapter.redis
