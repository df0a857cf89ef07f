// The options are documented once: the README's option tables and the typings must name the
// same options (index.d.ts is what editors show; the README is what people read).
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

const root = new URL('../', import.meta.url)
const readme = readFileSync(new URL('README.md', root), 'utf8')
const dts = readFileSync(new URL('index.d.ts', root), 'utf8')

/** Field names of `interface Name { … }` (or `extends`) in index.d.ts. */
function fields(name, { required = false } = {}) {
  const m = dts.match(new RegExp(`export interface ${name}(?: extends \\w+)? \\{([\\s\\S]*?)\\n\\}`))
  assert.ok(m, `index.d.ts has no interface ${name}`)
  return [...m[1].matchAll(required ? /^\s+(\w+)\??:/gm : /^\s+(\w+)\?:/gm)].map((x) => x[1])
}

/** Option names in the first column of the README tables under `## heading`. */
function rows(heading) {
  const start = readme.indexOf(`\n## ${heading}\n`)
  assert.ok(start >= 0, `README has no section ${heading}`)
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(/^\| `([\w.]+)` \|/gm)].map((x) => x[1]).filter((n) => !n.startsWith('E_'))
}

test('README option tables and index.d.ts name the same options', () => {
  const documented = new Set([...rows('Configuration'), ...rows('Redis and Redlock'), ...rows('PostgreSQL')])
  const typed = new Set([
    ...fields('LockConfig'),
    ...fields('CreateOptions').filter((f) => f !== 'lockConfig'),
    ...fields('RedisLockOptions').map((f) => `lockOptions.${f}`),
    ...fields('PostgresLockOptions').map((f) => `lockOptions.${f}`),
  ])
  for (const name of typed) assert.ok(documented.has(name), `index.d.ts has option ${name}, the README's tables do not`)
  const tls = fields('RedisTls')
  const sentinel = ['RedisSentinelConnection', 'RedisClusterConnection'].flatMap((i) => fields(i, { required: true }).map((f) => `connection.${f}`))
  for (const name of documented) {
    const known = typed.has(name) || sentinel.includes(name) || ((name === 'connection.tls' || name === 'connection.ssl') && tls.length > 0)
    assert.ok(known, `the README documents ${name}, index.d.ts does not type it`)
  }
})
