'use strict'

// A tour of oxlock on the in-memory default: `npm run demo`.

const Lock = require('..')

const log = (...a) => console.log(...a)

async function main() {
  // The @leverege/lock shape; LOCK_CONFIG may hold the same object as a JSON string.
  const lock = Lock.create({
    namespace: 'demo',
    lockConfig: process.env.LOCK_CONFIG || { type: 'inMemory', retry: 10, delay: 100 },
  })

  // Lock, work, unlock.
  const l = await lock.lock('invoice:42', 1000)
  log(`locked ${l.resource} (token ${l.value.slice(0, 8)}…, expires in ${l.expiration - Date.now()} ms)`)
  await l.unlock()

  // lockNs prefixes the namespace.
  const ns = await lock.lockNs('report', { ttl: 500 })
  log(`lockNs locked ${ns.resource}`)

  // Contention: five tasks on one key run one at a time, in arrival order, handed off on unlock.
  let inside = 0
  const order = []
  await Promise.all(
    [1, 2, 3, 4, 5].map(async (n) => {
      const h = await lock.lock('counter')
      if (++inside !== 1) throw new Error('two holders at once')
      order.push(n)
      await Lock.wait(5)
      inside--
      await h.unlock()
    }),
  )
  log(`five contenders ran one at a time, in order ${order.join(' ')}`)

  // A forgotten lock expires after its ttl, and the next waiter gets it at once.
  const t0 = Date.now()
  const next = await lock.lockNs('report')
  log(`the 500 ms lock on ${next.resource} expired; the waiter got it after ${Date.now() - t0} ms`)
  await ns.unlock() // stale handle: resolves, and does not free the new holder
  log(`stale unlock left it locked: ${lock.isLocked('demo:report')}`)

  // extend() resolves the handle to use.
  const extended = await next.extend(2000)
  log(`extended to ${extended.expiration - Date.now()} ms from now`)
  await extended.unlock()

  // Errors carry a stable code.
  const busy = await lock.lock('counter', 60_000)
  const impatient = Lock.create({ retry: 0 })
  const held = await impatient.lock('job')
  await impatient.lock('job').catch((e) => log(`${e.name} ${e.code}: ${e.message}`))
  await held.unlock()

  // An AbortSignal takes a waiter out of the queue at once.
  const ac = new AbortController()
  const waiting = lock.lock('counter', { signal: ac.signal })
  ac.abort()
  await waiting.catch((e) => log(`${e.name} ${e.code}`))
  await busy.unlock()

  // Symbol.asyncDispose: `await using h = await lock.lock('k')` releases at scope end.
  const scoped = await lock.lock('scoped')
  await scoped[Symbol.asyncDispose]()
  log(`after dispose: locked = ${lock.isLocked('scoped')}, keys with state = ${lock.size}`)

  await lock.destroy()
  await impatient.destroy()
  log('destroyed; the process exits by itself')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
