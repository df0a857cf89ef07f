'use strict'

// The CLI's store: which one (from --url, --config, or LOCK_CONFIG) and the native
// StoreAdmin over it, its JSON answers turned into values or LockErrors with their codes.

const { readFileSync } = require('node:fs')
const { native } = require('../lib/native.js')
const { LockError, ConfigError, fromNative } = require('../lib/errors.js')

const TYPES = { 'redis:': 'redis', 'rediss:': 'redis', 'postgres:': 'postgres', 'postgresql:': 'postgres' }

/** The `create()` options the flags and the environment give, or a ConfigError. */
function storeOptions({ url = [], config }, env = process.env) {
  if (url.length > 0) {
    const types = new Set(url.map((u) => TYPES[safeProtocol(u)]))
    if (types.has(undefined)) throw new ConfigError('--url: expected redis://, rediss://, postgres:// or postgresql:// URLs')
    if (types.size > 1) throw new ConfigError('--url: every URL must be of the same store')
    const [type] = types
    if (type === 'postgres' && url.length > 1) throw new ConfigError('--url: one PostgreSQL URL')
    return { type, connection: url.length === 1 ? url[0] : url }
  }
  if (config !== undefined) {
    let text
    try {
      text = readFileSync(config, 'utf8')
    } catch (e) {
      throw new ConfigError(`--config: cannot read ${config} (${e.code || e.message})`)
    }
    return { lockConfig: parseJson(text, `--config ${config}`) }
  }
  if (env.LOCK_CONFIG) return { lockConfig: parseJson(env.LOCK_CONFIG, 'LOCK_CONFIG') }
  throw new ConfigError('no store given: pass --url, --config <file> or set LOCK_CONFIG')
}

function safeProtocol(u) {
  try {
    return new URL(u).protocol
  } catch {
    return undefined
  }
}

// The parser's message quotes the text, which may hold a password: only the position is told.
function parseJson(text, where) {
  try {
    return JSON.parse(text)
  } catch (e) {
    const at = /position (\d+)/.exec(e.message)
    throw new ConfigError(`${where} is not JSON${at ? ` (at position ${at[1]})` : ''}`)
  }
}

/** What the CLI asks of a store; each method resolves with the answer or rejects. */
class Store {
  constructor(options) {
    try {
      this._admin = new native.StoreAdmin(options)
    } catch (e) {
      throw fromNative(e)
    }
    this.type = options.type || typeName(options.lockConfig)
  }

  async _call(method, ...args) {
    const answer = JSON.parse(await this._admin[method](...args))
    if (answer.error) throw new LockError(answer.error.message, { code: answer.error.code })
    return answer.ok
  }

  list(pattern, limit) {
    return this._call('list', pattern, limit)
  }

  inspect(key) {
    return this._call('inspect', key)
  }

  forceUnlock(key, token = null) {
    return this._call('forceUnlock', key, token)
  }

  notifies(pattern) {
    return this._call('notifies', pattern)
  }

  changed(seen, ms) {
    return this._call('changed', seen, ms)
  }

  close() {
    this._admin.close()
  }
}

function typeName(lockConfig) {
  const c = typeof lockConfig === 'string' ? safeJson(lockConfig) : lockConfig
  return (c && c.type) || 'redis'
}

function safeJson(s) {
  try {
    return JSON.parse(s)
  } catch {
    return undefined
  }
}

module.exports = { storeOptions, Store }
