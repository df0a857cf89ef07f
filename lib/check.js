'use strict'

// Argument checks of the lock API: a wrong type is a TypeError, a value out of range a
// RangeError, each with a stable code.

const { typeError, rangeError } = require('./errors.js')
const { MAX_MS } = require('./native.js')

function describe(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${v}`
  return typeof v
}

function checkKey(key) {
  if (typeof key !== 'string') throw typeError(`key must be a string, got ${describe(key)}`)
  if (key.length === 0) throw rangeError('key must not be empty')
}

// A lock's key: one string, or an array of them (a multi-resource lock, all or nothing).
function checkResource(key) {
  if (!Array.isArray(key)) return checkKey(key)
  if (key.length === 0) throw rangeError('a multi-resource lock needs at least one key, got an empty array')
  for (let i = 0; i < key.length; i++) {
    const k = key[i]
    if (typeof k !== 'string') throw typeError(`key[${i}] must be a string, got ${describe(k)}`)
    if (k.length === 0) throw rangeError(`key[${i}] must not be empty`)
  }
}

function checkTtl(ttl, what = 'ttl') {
  if (typeof ttl !== 'number') throw typeError(`${what} must be a number of milliseconds, got ${describe(ttl)}`)
  if (!(ttl > 0 && ttl <= MAX_MS)) throw rangeError(`${what} must be > 0 and <= ${MAX_MS} ms, got ${ttl}`)
  return Math.ceil(ttl)
}

function checkSignal(signal) {
  if (signal === undefined) return
  if (signal === null || typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw typeError(`signal must be an AbortSignal, got ${describe(signal)}`)
  }
}

module.exports = { describe, checkKey, checkResource, checkTtl, checkSignal }
