// Bad arguments and bad configurations: the right class, code and message, and a manager
// that keeps working afterwards.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { inspect } from 'node:util'

import { create, InMemoryLock, LockError, ConfigError } from '../index.mjs'
import { rejectsWith, throwsWith, rejectsAtOnce, checkError, MAX_MS } from './helpers.mjs'

const managers = []
function mk(options) {
  const m = create(options)
  managers.push(m)
  return m
}
after(() => Promise.all(managers.map((m) => m.destroy())))

/** The manager still locks, excludes and unlocks normally. */
async function stillWorks(m, key = 'errors:still-works') {
  const h = await m.lock(key, 1000)
  assert.equal(m.isLocked(key), true)
  await h.unlock()
  assert.equal(m.isLocked(key), false)
  assert.equal(m.size, 0)
}

const describeValue = (v) => inspect(v, { breakLength: Infinity })

describe('lock() / lockNs() argument errors are rejections', () => {
  const badKeys = [123, undefined, null, {}, true, Symbol('k'), 1n, () => 'k', new String('k')]
  for (const method of ['lock', 'lockNs']) {
    for (const key of badKeys) {
      test(`${method}(${describeValue(key)}) rejects TypeError E_INVALID_ARG`, async () => {
        const m = mk({ namespace: 'ns' })
        const p = m[method](key)
        await rejectsWith(p, TypeError, 'E_INVALID_ARG', /^key must be a string, got /)
        await stillWorks(m)
      })
    }
    test(`${method}('') rejects RangeError E_OUT_OF_RANGE`, async () => {
      const m = mk({ namespace: 'ns' })
      await rejectsWith(m[method](''), RangeError, 'E_OUT_OF_RANGE', /key must not be empty/)
      await stillWorks(m)
    })
  }

  test('the key message describes the value', async () => {
    const m = mk()
    await rejectsWith(m.lock(123), TypeError, 'E_INVALID_ARG', 'key must be a string, got number 123')
    await rejectsWith(m.lock(null), TypeError, 'E_INVALID_ARG', 'key must be a string, got null')
    // An array is a multi-resource lock (multi.test.mjs): an empty one is out of range.
    await rejectsWith(m.lock([]), RangeError, 'E_OUT_OF_RANGE', 'a multi-resource lock needs at least one key, got an empty array')
    await rejectsWith(m.lock(['k', 1]), TypeError, 'E_INVALID_ARG', 'key[1] must be a string, got number 1')
    await rejectsWith(m.lock(undefined), TypeError, 'E_INVALID_ARG', 'key must be a string, got undefined')
  })

  const badTypeTtls = [['100'], [true], [{ ttl: '100' }], [{ ttl: null }], [{ ttl: true }], [1n], [{ ttl: 1n }], [Symbol('t')]]
  for (const [ttl] of badTypeTtls) {
    test(`lock('k', ${describeValue(ttl)}) rejects TypeError E_INVALID_ARG`, async () => {
      const m = mk()
      await rejectsWith(m.lock('k', ttl), TypeError, 'E_INVALID_ARG', /ttl/)
      await stillWorks(m)
    })
  }

  const badRangeTtls = [0, -1, -0.5, NaN, Infinity, -Infinity, MAX_MS + 1, 2 ** 53]
  for (const ttl of badRangeTtls) {
    test(`lock('k', ${ttl}) and lock('k', { ttl: ${ttl} }) reject RangeError E_OUT_OF_RANGE`, async () => {
      const m = mk()
      await rejectsWith(m.lock('k', ttl), RangeError, 'E_OUT_OF_RANGE', /^ttl must be > 0 and <= 2147483647 ms, got /)
      await rejectsWith(m.lock('k', { ttl }), RangeError, 'E_OUT_OF_RANGE', /ttl/)
      await rejectsWith(mk({ namespace: 'n' }).lockNs('k', ttl), RangeError, 'E_OUT_OF_RANGE')
      await stillWorks(m)
    })
  }

  const badSignals = [{}, 'signal', 1, null, { aborted: 'no', addEventListener() {} }, { aborted: false }, new AbortController()]
  for (const signal of badSignals) {
    test(`lock('k', { signal: ${describeValue(signal)} }) rejects TypeError`, async () => {
      const m = mk({ retry: -1 })
      await rejectsWith(m.lock('k', { signal }), TypeError, 'E_INVALID_ARG', /^signal must be an AbortSignal, got /)
      await stillWorks(m)
    })
  }

  test('bad input on a held key queues nothing', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('k')
    await rejectsWith(m.lock('k', 0), RangeError, 'E_OUT_OF_RANGE')
    await rejectsWith(m.lock('k', { signal: {} }), TypeError, 'E_INVALID_ARG')
    await rejectsWith(m.lock('k', 'x'), TypeError, 'E_INVALID_ARG')
    await h.unlock()
    assert.equal(m.isLocked('k'), false, 'nothing was waiting')
    assert.equal(m.size, 0)
  })

  test('argument errors reject at once (no waiting on a held key)', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('k')
    checkError(await rejectsAtOnce(m.lock('k', -5)), RangeError, 'E_OUT_OF_RANGE')
    checkError(await rejectsAtOnce(m.lock(5)), TypeError, 'E_INVALID_ARG')
    await h.unlock()
  })

  test('lockNs without a namespace rejects ConfigError; a bad key is reported first', async () => {
    const m = mk()
    await rejectsWith(m.lockNs('k'), ConfigError, 'E_CONFIG', /namespace/)
    await rejectsWith(m.lockNs(5), TypeError, 'E_INVALID_ARG')
    await stillWorks(m)
  })

  test('a stream of mixed bad calls, then 100 good ones', async () => {
    const m = mk({ retry: -1 })
    const bad = [m.lock(1), m.lock(''), m.lock('k', 0), m.lock('k', NaN), m.lock('k', '1'), m.lock('k', { signal: 1 }), m.lockNs('k')]
    const settled = await Promise.allSettled(bad)
    assert.ok(settled.every((s) => s.status === 'rejected'))
    let inside = 0
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        const h = await m.lock('k')
        assert.equal(++inside, 1)
        await null
        inside--
        await h.unlock()
      }),
    )
    assert.equal(m.size, 0)
  })
})

describe('extend() and isLocked() argument errors', () => {
  test('extend with a bad ttl rejects and leaves the lock as it was', async () => {
    const m = mk({ retry: 0 })
    const h = await m.lock('k', 5000)
    const before = h.expiration
    await rejectsWith(h.extend('100'), TypeError, 'E_INVALID_ARG', /ttl/)
    await rejectsWith(h.extend(null), TypeError, 'E_INVALID_ARG')
    await rejectsWith(h.extend({ ttl: 100 }), TypeError, 'E_INVALID_ARG')
    for (const bad of [0, -1, NaN, Infinity, MAX_MS + 1]) {
      await rejectsWith(h.extend(bad), RangeError, 'E_OUT_OF_RANGE', /ttl/)
    }
    assert.ok(Math.abs(h.expiration - before) <= 2, 'expiration unchanged')
    assert.equal(m.isLocked('k'), true)
    const e = await h.extend(1000)
    assert.equal(e, h)
    await h.unlock()
    await stillWorks(m)
  })

  test('isLocked throws synchronously on a bad key', () => {
    const m = mk()
    throwsWith(() => m.isLocked(5), TypeError, 'E_INVALID_ARG', 'key must be a string, got number 5')
    throwsWith(() => m.isLocked(undefined), TypeError, 'E_INVALID_ARG')
    throwsWith(() => m.isLocked(''), RangeError, 'E_OUT_OF_RANGE')
    assert.equal(m.isLocked('fine'), false)
  })
})

describe('create() configuration errors', () => {
  const cases = [
    // [title, options, Class, messageCheck]
    ['unknown type', { type: 'mongo' }, ConfigError, (m) => m.includes('type') && m.includes('mongo')],
    ['unknown type inside lockConfig', { lockConfig: { type: 'mongo' } }, ConfigError, (m) => m.includes('lockConfig.type') && m.includes('mongo')],
    ['unknown type inside a lockConfig string', { lockConfig: '{"type":"etcd"}' }, ConfigError, (m) => m.includes('lockConfig.type') && m.includes('etcd')],
    ['type redis with a non-Redis URL', { type: 'redis', connection: 'http://u:secret@h' }, ConfigError, (m) => m.startsWith('connection') && !m.includes('secret')],
    ['type redis in lockConfig with no nodes', { lockConfig: { type: 'redis', connection: [] } }, ConfigError, (m) => m.startsWith('lockConfig.connection')],
    ['redis connection.port a string', { type: 'redis', connection: { port: '6379' } }, TypeError, (m) => m === 'connection.port must be a number, got string'],
    ['redis lockOptions.retryJitter negative', { type: 'redis', lockOptions: { retryJitter: -1 } }, RangeError, (m) => m.startsWith('lockOptions.retryJitter')],
    ['type not a string', { type: 5 }, TypeError, (m) => m.startsWith('type must be a string')],
    ['lockConfig string that is not JSON', { lockConfig: '{nope' }, ConfigError, (m) => m.includes('lockConfig')],
    ['lockConfig empty string', { lockConfig: '' }, ConfigError, (m) => m.includes('lockConfig')],
    ['lockConfig JSON of an array', { lockConfig: '[1,2]' }, TypeError, (m) => m === 'lockConfig must be an object or its JSON string, got array'],
    ['lockConfig JSON of a number', { lockConfig: '42' }, TypeError, (m) => m.startsWith('lockConfig must be an object')],
    ['lockConfig JSON null', { lockConfig: 'null' }, TypeError, (m) => m === 'lockConfig must be an object or its JSON string, got null'],
    ['lockConfig a number', { lockConfig: 5 }, TypeError, (m) => m === 'lockConfig must be an object or its JSON string, got number'],
    ['lockConfig a boolean', { lockConfig: true }, TypeError, (m) => m.startsWith('lockConfig must be')],
    ['lockConfig.retry a string', { lockConfig: { retry: '3' } }, TypeError, (m) => m === 'lockConfig.retry must be a number, got string'],
    ['retry a string', { retry: '3' }, TypeError, (m) => m === 'retry must be a number, got string'],
    ['retry a boolean', { retry: true }, TypeError, (m) => m === 'retry must be a number, got boolean'],
    ['retry an array', { retry: [3] }, TypeError, (m) => m === 'retry must be a number, got array'],
    ['retry a function', { retry: () => 3 }, TypeError, (m) => m === 'retry must be a number, got function'],
    ['retry a bigint', { retry: 3n }, TypeError, (m) => m === 'retry must be a number, got bigint'],
    ['retry not an integer', { retry: 1.5 }, RangeError, (m) => m.startsWith('retry') && m.includes('integer')],
    ['retry NaN', { retry: NaN }, RangeError, (m) => m.startsWith('retry') && m.includes('NaN')],
    ['retry Infinity', { lockConfig: { retry: Infinity } }, RangeError, (m) => m.startsWith('lockConfig.retry') && m.includes('Infinity')],
    ['delay NaN', { delay: NaN }, RangeError, (m) => m.startsWith('delay') && m.includes('NaN')],
    ['delay negative', { delay: -1 }, RangeError, (m) => m.startsWith('delay')],
    ['delay negative in lockConfig', { lockConfig: { delay: -5 } }, RangeError, (m) => m.startsWith('lockConfig.delay')],
    ['delay too large', { delay: MAX_MS + 1 }, RangeError, (m) => m.startsWith('delay')],
    ['delay a string', { delay: '200' }, TypeError, (m) => m === 'delay must be a number, got string'],
    ['ttl 0', { ttl: 0 }, RangeError, (m) => m.startsWith('ttl must be > 0')],
    ['ttl negative', { lockConfig: { ttl: -10 } }, RangeError, (m) => m.startsWith('lockConfig.ttl')],
    ['ttl Infinity', { ttl: Infinity }, RangeError, (m) => m.startsWith('ttl') && m.includes('Infinity')],
    ['ttl -Infinity', { ttl: -Infinity }, RangeError, (m) => m.startsWith('ttl')],
    ['ttl too large', { ttl: MAX_MS + 1 }, RangeError, (m) => m.startsWith('ttl')],
    ['ttl a string', { ttl: '10s' }, TypeError, (m) => m === 'ttl must be a number, got string'],
    ['namespace a number', { namespace: 5 }, TypeError, (m) => m === 'namespace must be a string, got number'],
    ['namespace a bigint', { namespace: 5n }, TypeError, (m) => m.startsWith('namespace') && m.includes('bigint')],
    ['namespace an object', { namespace: {} }, TypeError, (m) => m === 'namespace must be a string, got object'],
    ['namespace empty', { namespace: '' }, RangeError, (m) => m.startsWith('namespace must not be empty')],
    ['scope unknown', { scope: 'global' }, ConfigError, (m) => m.startsWith('scope') && m.includes('global')],
    ['scope unknown in lockConfig', { lockConfig: { scope: 'thread' } }, ConfigError, (m) => m.startsWith('lockConfig.scope')],
    ['scope not a string', { scope: 1 }, TypeError, (m) => m.startsWith('scope must be')],
    ['lockOptions not an object', { lockOptions: 5 }, TypeError, (m) => m === 'lockOptions must be an object, got number'],
    ['lockOptions.retryCount a string', { lockOptions: { retryCount: 'x' } }, TypeError, (m) => m === 'lockOptions.retryCount must be a number, got string'],
    ['lockOptions.retryCount not an integer', { lockOptions: { retryCount: 2.5 } }, RangeError, (m) => m.startsWith('lockOptions.retryCount')],
    ['lockConfig.lockOptions.retryDelay negative', { lockConfig: { lockOptions: { retryDelay: -5 } } }, RangeError, (m) => m.startsWith('lockConfig.lockOptions.retryDelay')],
  ]
  for (const [title, options, Class, check] of cases) {
    test(`${title}: ${Class.name} E_CONFIG naming the field`, () => {
      const e = throwsWith(() => create(options), Class, 'E_CONFIG', check)
      if (Class === ConfigError) assert.equal(e.name, 'ConfigError')
    })
  }

  const notObjects = [['a string', 'inMemory'], ['a number', 5], ['null', null], ['an array', []], ['true', true]]
  for (const [title, options] of notObjects) {
    test(`options ${title}: TypeError E_CONFIG`, () => {
      throwsWith(() => create(options), TypeError, 'E_CONFIG', /^options must be an object, got /)
    })
  }

  test('new InMemoryLock() validates the same way', () => {
    throwsWith(() => new InMemoryLock({ retry: 'x' }), TypeError, 'E_CONFIG', 'retry must be a number, got string')
    throwsWith(() => new InMemoryLock({ type: 'redis' }), ConfigError, 'E_CONFIG', /redis/)
    throwsWith(() => new InMemoryLock('x'), TypeError, 'E_CONFIG')
  })

  test('create() is synchronous and a failed create() leaves no trace', async () => {
    for (let i = 0; i < 50; i++) assert.throws(() => create({ retry: 'bad' }))
    const m = mk({ retry: 0 })
    assert.ok(!(m instanceof Promise))
    await stillWorks(m)
  })

  test('edge values that are valid', async () => {
    for (const options of [
      { retry: 0 },
      { retry: -1 },
      { retry: -100 },
      { retry: 1e12 },
      { delay: 0 },
      { delay: MAX_MS },
      { ttl: MAX_MS },
      { ttl: 0.5 },
      { scope: 'instance' },
      { scope: 'process' },
      { lockConfig: '{}' },
      { lockConfig: {} },
    ]) {
      const m = mk(options)
      assert.equal(m.type, 'inMemory', JSON.stringify(options))
    }
    const m = mk({ retry: 1e12, delay: 1 }) // a huge budget is fine
    const h = await m.lock('edge')
    await h.unlock()
  })

  // BUG: create() serialises the whole options object with JSON.stringify, so an unrelated
  // extra field holding a circular structure (a logger, a client instance) throws V8's
  // "Converting circular structure to JSON" TypeError, without a code. Other unknown fields
  // are ignored; this one should be ignored too (or at least be an E_CONFIG error).
  test('an extra option field holding a circular structure is ignored, never an uncoded error', () => {
    const logger = { name: 'logger' }
    logger.self = logger
    let m
    try {
      m = create({ namespace: 'n', retry: 0, logger })
    } catch (e) {
      assert.equal(e.code, 'E_CONFIG', `create() threw an error without a stable code: ${e.name}: ${e.message.split('\n')[0]}`)
      return
    }
    managers.push(m)
    assert.equal(m.namespace, 'n')
  })

  test('LockError is not used for argument or config errors', async () => {
    const m = mk()
    const e = await m.lock(1).catch((x) => x)
    assert.ok(!(e instanceof LockError))
    let c
    try {
      create({ type: 'x' })
    } catch (x) {
      c = x
    }
    assert.ok(c instanceof ConfigError && !(c instanceof LockError))
  })
})
