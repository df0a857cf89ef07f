// Typings of the drop-in entry points, compiled by `tsc -p __test__` (never run).
import Locky = require('../compat/fast-locky')
import ExclusiveLock = require('../compat/exclusive-lock')
import LocksFactory, { FailedToObtainKey, Lock, LockFactory, RedisStorage, PostgresqlStorage, type Storage } from '../compat/distributed-locks'
import { PostgresqlStorage as PgStorage2 } from '../compat/distributed-locks-postgresql'

export async function drop_ins(client: object): Promise<void> {
  const locky = new Locky({ redis: { host: '127.0.0.1', port: 6379 }, ttl: 2000, name: 'app' })
  locky.on('expire', (resource: string) => void resource)
  const ok: true | undefined = await locky.lock([{ resource: 'a', locker: 1 }], true)
  const lockers = await locky.getLockers(['a'])
  void [ok, lockers?.[0]?.length]
  await locky.close()

  const ex = new ExclusiveLock({ name: 'app', cache_connection: client, lock_ttl_ms: 3000, lock_refresh_ms: 1000 })
  const got: boolean = await ex.acquire()
  const seen = await ex.inspect()
  void [got, seen?.lock_ttl_ms, ex.refresh_timer, ex.key]
  await ex.release()
  // @ts-expect-error name is required
  new ExclusiveLock({ cache_connection: client })

  const mine: Storage = { init() {}, set: () => true, unSet: () => true, close() {} }
  const factory = new LocksFactory(new RedisStorage({ url: 'redis://127.0.0.1:6379' }))
  const other = new LockFactory(mine, { machineId: '2' })
  const lock: Lock = factory.createLock('k')
  try {
    await lock.lock({ ttl: 0.5, retries: 3, interval: 1 })
  } catch (e) {
    if (e instanceof FailedToObtainKey) void e.code
  }
  void other
  await lock.unlock()
  const pg = new LocksFactory(new PostgresqlStorage({ host: '127.0.0.1', port: 5432, database: 'postgres', username: 'u', password: 'p', tableName: 'locks' }))
  await pg.init()
  const viaUrl: Storage = new PgStorage2({ url: 'postgres://u@127.0.0.1/db', keyPrefix: 'app' })
  void viaUrl
  await pg.close()
}
