// A 3-master Redis Cluster for the tests (not a test file): `redis-server --cluster-enabled
// yes` ×3 on free loopback ports (each with its bus port, +10000, free too), joined by
// `redis-cli --cluster create`; stopped by an after() hook and the redis harness's watchdog.
//
//   const c = await useCluster()     // { nodes, seeds, get(key), owner(key), migrate(slot, to) }
import { after } from 'node:test'
import { execFile } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'

import { RedisServer, freePort, harnessDir } from './redis-harness.mjs'

const run = promisify(execFile)
const CLI = process.env.REDIS_CLI_BIN || 'redis-cli'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function bindable(port) {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

/** A free port whose cluster bus port (+10000) is free too. */
async function clusterPort() {
  for (;;) {
    const p = await freePort()
    if (p < 55000 && (await bindable(p + 10000))) return p
  }
}

async function startNode() {
  for (let tries = 0; ; tries++) {
    const port = await clusterPort()
    const args = ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(harnessDir, `nodes-${port}.conf`), '--cluster-node-timeout', '3000']
    try {
      return await new RedisServer(port, args).start()
    } catch (e) {
      if (!e.addressInUse || tries >= 5) throw e
    }
  }
}

async function ok(nodes, ms = 20000) {
  const end = Date.now() + ms
  for (;;) {
    const infos = await Promise.all(nodes.map((n) => n.cmd('CLUSTER', 'INFO').catch(() => '')))
    if (infos.every((i) => /cluster_state:ok/.test(i))) return
    if (Date.now() > end) throw new Error(`the cluster is not ok after ${ms} ms: ${infos.join(' | ')}`)
    await sleep(100)
  }
}

export async function useCluster() {
  const nodes = await Promise.all([0, 1, 2].map(() => startNode()))
  after(async () => {
    await Promise.all(nodes.map((n) => n.kill()))
  })
  await run(CLI, ['--cluster', 'create', ...nodes.map((n) => n.label), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30000 })
  await ok(nodes)
  const ids = new Map()
  for (const n of nodes) ids.set(n, String(await n.cmd('CLUSTER', 'MYID')))
  const c = {
    nodes,
    seeds: nodes.map((n) => n.options),
    id: (n) => ids.get(n),
    slot: async (key) => Number(await nodes[0].cmd('CLUSTER', 'KEYSLOT', key)),
    /** The node that serves `key`'s slot now. */
    async owner(key) {
      const slot = await c.slot(key)
      const shards = await nodes[0].cmd('CLUSTER', 'SLOTS')
      const [, , [, port]] = shards.find(([from, to]) => slot >= from && slot <= to)
      return nodes.find((n) => n.port === Number(port))
    },
    /** GET on the node that owns the key. */
    async get(key) {
      return (await c.owner(key)).get(key)
    },
    /** Moves `slot` with its keys to node `to` (IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE). */
    async migrate(slot, to) {
      const shards = await nodes[0].cmd('CLUSTER', 'SLOTS')
      const [, , [, port]] = shards.find(([a, b]) => slot >= a && slot <= b)
      const from = nodes.find((n) => n.port === Number(port))
      if (from === to) return
      await to.cmd('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', c.id(from))
      await from.cmd('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', c.id(to))
      for (;;) {
        const keys = await from.cmd('CLUSTER', 'GETKEYSINSLOT', String(slot), '100')
        if (keys.length === 0) break
        await from.cmd('MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'KEYS', ...keys)
      }
      for (const n of nodes) await n.cmd('CLUSTER', 'SETSLOT', String(slot), 'NODE', c.id(to))
    },
  }
  return c
}
