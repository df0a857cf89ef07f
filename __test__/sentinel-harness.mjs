// A Redis Sentinel deployment for the tests (not a test file): a master, a replica and three
// sentinels (`redis-server <config> --sentinel`), each on a free loopback port, stopped by an
// after() hook and, through redis-harness.mjs's pid files, by its watchdog.
//
//   const d = await useSentinel()     // { master, replica, sentinels, name, connection }
//   await d.failover()                // kills the master, waits until the sentinels promote the replica
import { after } from 'node:test'
import fs from 'node:fs'
import path from 'node:path'

import { RedisServer, startRedis, freePort, harnessDir } from './redis-harness.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const NAME = 'oxlock-master'
const DOWN_AFTER_MS = 1000

async function startSentinel(masterPort) {
  const port = await freePort()
  const configFile = path.join(harnessDir, `sentinel-${port}.conf`)
  fs.writeFileSync(
    configFile,
    [
      `sentinel monitor ${NAME} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER_MS}`,
      `sentinel failover-timeout ${NAME} 5000`,
      `sentinel parallel-syncs ${NAME} 1`,
      '',
    ].join('\n'),
  )
  return new RedisServer(port, ['--sentinel'], { configFile }).start()
}

/** Waits until every sentinel names `port` as the master (and knows the others). */
async function settled(sentinels, port, ms = 20000) {
  const end = Date.now() + ms
  for (;;) {
    const named = await Promise.all(sentinels.map((s) => s.cmd('SENTINEL', 'get-master-addr-by-name', NAME).catch(() => null)))
    const known = await Promise.all(sentinels.map((s) => s.cmd('SENTINEL', 'sentinels', NAME).then((l) => l.length).catch(() => 0)))
    if (named.every((a) => a && Number(a[1]) === port) && known.every((k) => k >= sentinels.length - 1)) return
    if (Date.now() > end) throw new Error(`sentinels did not agree on master ${port} within ${ms} ms: ${JSON.stringify(named)}`)
    await sleep(100)
  }
}

export async function useSentinel() {
  // No diskless-sync delay (5 s by default): the replica is in sync at once, and again
  // after a failover (when the old master comes back as a replica).
  const fast = ['--repl-diskless-sync-delay', '0']
  const master = await startRedis(fast)
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(master.port), ...fast])
  for (const end = Date.now() + 10000; !/master_link_status:up/.test(await replica.cmd('INFO', 'replication')); ) {
    if (Date.now() > end) throw new Error('the replica did not sync with the master')
    await sleep(20)
  }
  const sentinels = await Promise.all([0, 1, 2].map(() => startSentinel(master.port)))
  after(async () => {
    await Promise.all([master, replica, ...sentinels].map((s) => s.kill()))
  })
  await settled(sentinels, master.port)
  const d = {
    name: NAME,
    master,
    replica,
    sentinels,
    connection: { sentinels: sentinels.map((s) => s.options), name: NAME },
    /** Kills the master (or, with `pause`, SIGSTOPs it: it stops answering without closing
     *  its connections); resolves once the sentinels name the replica and it says it is master. */
    async failover({ pause = false } = {}) {
      const old = d.master
      if (pause) old.pause()
      else await old.kill()
      await settled(sentinels, d.replica.port, 30000)
      for (const end = Date.now() + 10000; ; ) {
        const role = await d.replica.cmd('ROLE').catch(() => null)
        if (role && role[0] === 'master') break
        if (Date.now() > end) throw new Error('the replica did not become master')
        await sleep(50)
      }
      ;[d.master, d.replica] = [d.replica, old]
    },
  }
  return d
}
