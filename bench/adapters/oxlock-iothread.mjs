// oxlock with OXLOCK_IO=thread: its Redis requests go through the tokio I/O thread (two
// thread wake-ups per request) instead of sockets the JS thread drives, so one run shows
// what the JS-thread path buys. Set before the addon loads, which reads it once.
process.env.OXLOCK_IO = 'thread'
const adapter = await import('./oxlock.mjs')

export const name = 'oxlock-iothread'
export const memory = adapter.memory
export const redis = adapter.redis
