// Type-checked only (tsc -p __test__), never run: every documented usage of oxlock must
// compile under --strict, and clear misuses must not.
import Lock, {
  create,
  wait,
  InMemoryLock,
  RedisLock,
  PostgresLock,
  LockHandle,
  LockError,
  ConfigError,
  DestroyedError,
  AbortError,
} from 'oxlock'
import type { CreateOptions, LockConfig, LockOptions, LockErrorCode, Lock as LockManager, RedisLockHandle, PostgresLockHandle } from 'oxlock'
import * as Relative from '../index.js'
import LockCjs = require('oxlock')

// README, "The API in one screen", as written there.
async function readme(): Promise<void> {
  const Lock = LockCjs // const Lock = require('oxlock')

  const lock = Lock.create({ namespace: 'myApp', lockConfig: process.env.LOCK_CONFIG || { type: 'inMemory' } })

  const l = await lock.lock('myKey', 1000) // lock "myKey" for 1000 ms (default ttl: 10 000 ms)
  await l.unlock()

  let n = await lock.lockNs('myKey', { ttl: 1000 }) // locks "myApp:myKey"
  n = await n.extend(1000) // expires 1000 ms from now; use the handle it resolves
  await n.unlock()

  await using s = await lock.lock('job') // released at scope end

  const ac = new AbortController()
  lock.lock('myKey', { ttl: 1000, signal: ac.signal }) // ac.abort() leaves the queue at once

  lock.isLocked('myKey') // is it held right now? (Redis: by this manager)
  lock.size // keys held or awaited in this manager (idle keys cost nothing)
  await lock.destroy() // releases everything; queued lock() calls reject E_DESTROYED

  const { resource, value, expiration } = s
  const fns: [() => Promise<void>, (ms?: number) => Promise<LockHandle>, () => Promise<void>] = [
    s.unlock,
    s.extend,
    s[Symbol.asyncDispose],
  ]
  void [resource, value, expiration, fns]
}

async function examples(): Promise<void> {
  // create() with lockConfig as an object (the @leverege/lock shape) ...
  const lock: InMemoryLock = Lock.create({
    namespace: 'app',
    lockConfig: { type: 'inMemory', retry: 10, delay: 200, ttl: 10_000, scope: 'instance' },
  })
  // ... or as the JSON string of a LOCK_CONFIG environment variable.
  const fromEnv = create({ namespace: 'app', lockConfig: process.env.LOCK_CONFIG ?? '{"type":"inMemory"}' })
  // Flat options, process scope, node-redlock option names.
  const shared = create({ type: 'inMemory', retry: -1, delay: 50, ttl: 5000, scope: 'process' })
  const redlockish = create({ lockOptions: { retryCount: 3, retryDelay: 100, driftFactor: 0.01, retryJitter: 50 } })
  const plain = create()
  const viaClass = new InMemoryLock({ retry: 0 })
  const viaNamespace: InMemoryLock = Relative.create({})

  const ns: string | undefined = lock.namespace
  const type: 'inMemory' = lock.type
  const size: number = lock.size
  const held: boolean = lock.isLocked('app:invoice:42')

  // lock / lockNs with a ttl number or { ttl, signal }.
  const l1: LockHandle = await lock.lock('invoice:42', 1000)
  const l2 = await lock.lockNs('report', { ttl: 500 })
  const ac = new AbortController()
  const l3 = await lock.lock('job', { signal: ac.signal })
  const l4 = await lock.lockNs('job', { ttl: 2000, signal: AbortSignal.timeout(1000) })
  const l5 = await lock.lock('plain')

  const resource: string = l1.resource
  const token: string = l1.value
  const expiresAt: number = l1.expiration

  // extend() resolves the handle to use.
  const extended: LockHandle = await l2.extend(2000)
  const again: LockHandle = await extended.extend()
  await again.unlock()
  const unlocked: void = await l1.unlock()

  // Symbol.asyncDispose: released at the end of the scope.
  {
    await using scoped = await lock.lock('k')
    const r: string = scoped.resource
    void r
  }
  {
    await using scopedNs = await lock.lockNs('k', { ttl: 100 })
    void scopedNs
  }
  const disposable: AsyncDisposable = l3
  await l4[Symbol.asyncDispose]()
  await disposable[Symbol.asyncDispose]()

  // Multi-resource locks: the handle's resource is the array.
  const both = await lock.lock(['a', 'b'], 1000)
  const bothKeys: readonly string[] = both.resource
  await both.extend(500)
  await both.unlock()
  const viaUsing: number = await lock.usingNs(['a', 'b'], async (_signal, h) => h.resource.length)
  void [bothKeys, viaUsing]

  // Errors carry a stable code.
  try {
    await lock.lock('busy')
  } catch (e) {
    if (e instanceof LockError) {
      const code: LockErrorCode = e.code
      const busy: 'E_LOCK_BUSY' | 'E_LOCK_EXPIRED' | 'E_UNAVAILABLE' | 'E_AUTH' | 'E_CROSSSLOT' | 'E_LOCK_LOST' | 'E_UNSUPPORTED' = e.code
      const keys: readonly string[] | undefined = e.resources
      const attempts: number = e.attempts
      const res: string = e.resource
      const name: 'LockError' = e.name
      const msg: string = e.message
      void [code, busy, attempts, res, name, msg]
    } else if (e instanceof DestroyedError) {
      const code: 'E_DESTROYED' = e.code
      void code
    } else if (e instanceof AbortError) {
      const code: 'E_ABORTED' = e.code
      const res: string = e.resource
      const cause: unknown = e.cause
      void [code, res, cause]
    } else if (e instanceof ConfigError) {
      const code: 'E_CONFIG' = e.code
      void code
    } else if (e instanceof TypeError || e instanceof RangeError) {
      void e.message
    }
  }
  try {
    create({ lockConfig: '{nope' })
  } catch (e) {
    if (e instanceof ConfigError) {
      const name: 'ConfigError' = e.name
      void name
    }
  }
  const asError: Error = new ConfigError('x')
  void asError

  // The default export carries everything.
  const d: typeof Lock = Lock
  const fns = [d.create, d.wait, d.InMemoryLock, d.LockHandle, d.LockError, d.ConfigError, d.DestroyedError, d.AbortError]
  await wait(10)
  await Lock.wait(1)

  // Option types are exported.
  const cfg: LockConfig = { type: 'inMemory', retry: 0 }
  const opts: CreateOptions = { namespace: 'x', lockConfig: cfg }
  const lo: LockOptions = { ttl: 100 }
  await (await plain.lock('x', lo)).unlock()
  void opts

  // destroy()
  const destroyed: Promise<void> = lock.destroy()
  await destroyed
  await Promise.all([fromEnv, shared, redlockish, plain, viaClass, viaNamespace].map((m) => m.destroy()))

  void [ns, type, size, held, resource, token, expiresAt, unlocked, fns, l5]
}

async function misuses(lock: LockManager, h: LockHandle): Promise<void> {
  // @ts-expect-error keys are strings
  await lock.lock(42)
  // @ts-expect-error ttl is a number or { ttl, signal }
  await lock.lock('k', '100')
  // @ts-expect-error ttl in options is a number
  await lock.lockNs('k', { ttl: '1s' })
  // @ts-expect-error signal must be an AbortSignal
  await lock.lock('k', { signal: new AbortController() })
  // @ts-expect-error unknown scope
  create({ scope: 'global' })
  // @ts-expect-error namespace is a string
  create({ namespace: 1 })
  // @ts-expect-error retry is a number
  create({ lockConfig: { retry: '3' } })
  // @ts-expect-error handles are not constructed by users
  new LockHandle()
  // @ts-expect-error resource is read-only
  h.resource = 'other'
  // @ts-expect-error size is read-only
  lock.size = 3
}

void readme
void examples
void misuses

// The Redis backend: the class follows `type`, handles carry `attempts`, errors `causes`.
async function redisExamples(): Promise<void> {
  const one: RedisLock = create({ type: 'redis', namespace: 'app', connection: { host: '127.0.0.1', port: 6379, password: 'pw', db: 0 } })
  const quorum: RedisLock = create({
    lockConfig: {
      type: 'redis',
      connection: ['redis://10.0.0.1:6379', 'redis://10.0.0.2:6379', { host: '10.0.0.3' }],
      lockOptions: { driftFactor: 0.01, retryCount: 10, retryDelay: 200, retryJitter: 100, nodeTimeout: 50, connectTimeout: 500 },
    },
  })
  const viaClass = new RedisLock({ type: 'redis', connection: 'rediss://user:pw@host:6380/1' })
  const h: RedisLockHandle = await one.lockNs('invoice', { ttl: 1000 })
  const attempts: number = h.attempts
  const again: RedisLockHandle = await h.extend(2000)
  await again.unlock()
  try {
    await quorum.lock('k', 1000)
  } catch (e) {
    if (e instanceof LockError && e.code === 'E_UNAVAILABLE') {
      const causes: string[] | undefined = e.causes
      void causes
    }
  }
  const size: number = quorum.size
  // isLocked on Redis: does this manager hold the key (sync, no I/O)
  const held: boolean = quorum.isLocked('k')
  void held
  void [attempts, size, viaClass]
  await Promise.all([one.destroy(), quorum.destroy(), viaClass.destroy()])
}
void redisExamples

// PostgreSQL: handles also carry `fence`.
async function postgresExamples(): Promise<void> {
  const pg: PostgresLock = create({
    type: 'postgres',
    connection: { host: '127.0.0.1', port: 5432, user: 'app', password: 'pw', database: 'app', ssl: { ca: 'PEM' } },
    lockOptions: { retryCount: 10, retryDelay: 1000, poolSize: 4, queryTimeout: 2000, connectTimeout: 2000, tableName: 'oxlock_locks' },
  })
  const viaUrl: PostgresLock = create({ lockConfig: { type: 'postgres', connection: 'postgres://app@db/app?sslmode=require' } })
  const h: PostgresLockHandle = await pg.lock('invoice:42', 5000)
  const fence: number = h.fence
  const again: PostgresLockHandle = await h.extend(5000)
  await again.unlock()
  void fence
  await Promise.all([pg.destroy(), viaUrl.destroy()])
}
void postgresExamples

// using(): the result type follows fn; the signal aborts with E_LOCK_LOST.
async function usingExamples(lock: InMemoryLock): Promise<void> {
  const n: number = await lock.using('job', async (signal, h) => {
    signal.addEventListener('abort', () => void signal.reason)
    return h.fence
  }, { ttl: 1000, maxHoldMs: 60000, maxExtensions: 100 })
  const s: string = await lock.usingNs('job', () => 'done')
  void [n, s]
}
void usingExamples

// Events: typed listeners on every manager.
function eventExamples(lock: InMemoryLock, redis: RedisLock): void {
  lock.on('lost', (e) => void e.resource)
  redis.on('extended', (e) => void [e.resource, e.value, e.expiration])
  redis.on('error', (err) => void [err.code, err.node, err.kind])
  redis.on('reconnect', (e) => void e.node)
}
void eventExamples
