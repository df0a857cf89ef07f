#!/usr/bin/env node
'use strict'

// `npx oxlock <command>`: see and manage the locks held in a store. Exit codes (README):
// 0 done, 1 the store failed (unreachable, refused), 2 a usage or config error, 3 no such
// lock, 4 not confirmed.

const { parseArgs } = require('node:util')
const readline = require('node:readline/promises')
const { storeOptions, Store } = require('./store.js')
const { colours, lockTable, table, duration, tokenPrefix } = require('./format.js')
const { watch } = require('./watch.js')
const { bench } = require('./bench.js')

const EXIT = { ok: 0, store: 1, usage: 2, notFound: 3, declined: 4 }

const HELP = `oxlock: see and manage the locks held in a Redis or PostgreSQL store

usage: oxlock <command> [options]

commands:
  list [pattern]         held locks (key, ttl left, token prefix, fence, nodes holding it)
  inspect <key>          one key on every node: token, ttl, fence, waiting mark
  watch [pattern]        a live view, updated as locks are taken, extended, released, expire
  unlock <key> --force   delete a lock whoever holds it (asks first unless --yes)
  bench                  a quick local throughput check (and on the store, when given)
  help                   this text

store (the first given wins):
  --url <url>            redis://, rediss:// or postgres:// (repeat for Redlock nodes)
  --config <file>        a JSON file with what Lock.create() takes as lockConfig
  LOCK_CONFIG            the same JSON in the environment

options:
  --json                 machine-readable output (watch: one JSON event per line)
  --limit <n>            at most n locks (list, watch; default 1000)
  --interval <ms>        watch: the longest time between two looks (default 500)
  --seconds <s>          bench: seconds per measurement (default 1)
  --yes                  unlock: do not ask
  --version              the version

patterns use * and ? (default *). exit codes: 0 done, 1 the store failed, 2 usage or
config error, 3 no such lock, 4 not confirmed.
`

const OPTIONS = {
  url: { type: 'string', multiple: true },
  config: { type: 'string' },
  json: { type: 'boolean' },
  limit: { type: 'string' },
  interval: { type: 'string' },
  seconds: { type: 'string' },
  force: { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
}

class UsageError extends Error {}

function number(value, name, fallback, min) {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number ≥ ${min}, got ${value}`)
  return n
}

async function run(argv, io) {
  const { out, err, env, stdin } = io
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true })
  } catch (e) {
    throw new UsageError(e.message)
  }
  const { values: o, positionals: [command = 'help', ...args] } = parsed
  const c = colours(out, env)
  if (o.version) {
    out.write(`${require('../package.json').version}\n`)
    return EXIT.ok
  }
  if (o.help || command === 'help') {
    out.write(HELP)
    return EXIT.ok
  }
  const limit = number(o.limit, 'limit', 1000, 1)
  const arg = (name) => {
    if (args.length === 0) throw new UsageError(`${command} needs a ${name}`)
    return args[0]
  }
  if (args.length > 1) throw new UsageError(`${command}: one argument at most, got ${args.length}`)
  if (command === 'bench') {
    const seconds = number(o.seconds, 'seconds', 1, 0.1)
    const given = o.url || o.config !== undefined || env.LOCK_CONFIG ? storeOptions(o, env) : undefined
    const results = await bench({ seconds, storeOptions: given })
    if (o.json) out.write(`${JSON.stringify(results)}\n`)
    else out.write(`${table(['STORE', 'SHAPE', 'OPS/S'], results.map((r) => [r.store, r.shape, r.opsPerSec.toLocaleString('en-US')]))}\n`)
    return EXIT.ok
  }
  if (!['list', 'inspect', 'watch', 'unlock'].includes(command)) throw new UsageError(`unknown command ${command}; see oxlock help`)
  if (command === 'unlock' && !o.force) throw new UsageError('unlock deletes the lock whoever holds it: say --force')
  const store = new Store(storeOptions(o, env))
  try {
    switch (command) {
      case 'list': {
        const { value, failures } = await store.list(args[0] ?? '*', limit)
        if (o.json) out.write(`${JSON.stringify({ locks: value, failures })}\n`)
        else out.write(`${lockTable(value, c)}\n`)
        for (const f of failures) err.write(`${c.red('unreachable:')} ${f}\n`)
        return EXIT.ok
      }
      case 'inspect': {
        const key = arg('key')
        const nodes = await store.inspect(key)
        const held = nodes.some((n) => n.token !== null)
        if (o.json) out.write(`${JSON.stringify({ key, held, nodes })}\n`)
        else {
          const rows = nodes.map((n) => [n.node, n.error ? c.red(n.error) : tokenPrefix(n.token), duration(n.ttlMs), n.fence ?? '-', n.waitingMs ? duration(n.waitingMs) : '-'])
          out.write(`${c.bold(key)}: ${held ? c.green('locked') : c.dim('not locked')}\n${table(['NODE', 'TOKEN', 'TTL', 'FENCE', 'WAITED'], rows)}\n`)
        }
        return held ? EXIT.ok : EXIT.notFound
      }
      case 'unlock': {
        const key = arg('key')
        const nodes = await store.inspect(key)
        const holders = nodes.filter((n) => n.token !== null)
        if (holders.length === 0) {
          err.write(`${key} is not locked\n`)
          return EXIT.notFound
        }
        if (!o.yes) {
          if (!stdin.isTTY) throw new UsageError('unlock --force asks for confirmation; with no terminal, say --yes')
          const rl = readline.createInterface({ input: stdin, output: err })
          // Ctrl-D or Ctrl-C at the prompt is a no.
          const answer = await new Promise((resolve) => {
            rl.once('close', () => resolve(''))
            rl.once('SIGINT', () => rl.close())
            rl.question(`delete ${key} (token ${tokenPrefix(holders[0].token)}, on ${holders.length}/${nodes.length} nodes)? [y/N] `).then(resolve, () => resolve(''))
          })
          rl.close()
          if (!/^y(es)?$/i.test(answer.trim())) {
            err.write('not deleted\n')
            return EXIT.declined
          }
        }
        // Confirmed at the prompt: only the holder that was shown (it may have changed since).
        const { value, failures } = await store.forceUnlock(key, o.yes ? null : holders[0].token)
        if (o.json) out.write(`${JSON.stringify({ key, deletedOn: value, failures })}\n`)
        else out.write(`deleted ${key} on ${value} of ${nodes.length} node(s)\n`)
        for (const f of failures) err.write(`${c.red('unreachable:')} ${f}\n`)
        return value > 0 ? EXIT.ok : EXIT.notFound
      }
      case 'watch': {
        const interval = number(o.interval, 'interval', 500, 10)
        const stop = new AbortController()
        const onSignal = () => stop.abort()
        process.once('SIGINT', onSignal)
        process.once('SIGTERM', onSignal)
        try {
          await watch(store, { pattern: args[0] ?? '*', interval, limit, json: o.json, live: Boolean(out.isTTY) && !o.json, c, out, signal: stop.signal })
        } finally {
          process.off('SIGINT', onSignal)
          process.off('SIGTERM', onSignal)
        }
        return EXIT.ok
      }
    }
  } finally {
    store.close()
  }
}

async function main() {
  const io = { out: process.stdout, err: process.stderr, env: process.env, stdin: process.stdin }
  try {
    process.exitCode = await run(process.argv.slice(2), io)
  } catch (e) {
    const usage = e instanceof UsageError || e.code === 'E_CONFIG'
    process.stderr.write(`oxlock: ${e.message}${e.code && !usage ? ` (${e.code})` : ''}\n`)
    if (e instanceof UsageError) process.stderr.write('see oxlock help\n')
    process.exitCode = usage ? EXIT.usage : EXIT.store
  }
}

if (require.main === module) main()

module.exports = { run, EXIT, HELP }
