'use strict'

// The native addon and this thread's link to it: the argument array of the in-memory hot
// path, and the promises of calls whose outcome is decided elsewhere (queued in-memory
// waiters, remote requests), by id, with what keeps the process alive while they wait.

// The platform packages with a prebuilt binary, by `${platform}-${arch}[-${libc}]`.
const PREBUILT = {
  'linux-x64-gnu': 'oxlock-linux-x64-gnu',
  'linux-arm64-gnu': 'oxlock-linux-arm64-gnu',
  'linux-x64-musl': 'oxlock-linux-x64-musl',
  'linux-arm64-musl': 'oxlock-linux-arm64-musl',
  'darwin-x64': 'oxlock-darwin-x64',
  'darwin-arm64': 'oxlock-darwin-arm64',
  'win32-x64': 'oxlock-win32-x64-msvc',
}

function platformKey() {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`
  const glibc = typeof process.report?.getReport === 'function' && process.report.getReport().header?.glibcVersionRuntime
  return `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`
}

// The generated loader (binding.js) finds the binary next to it or in the platform
// package; when neither is there, say which package this platform needs.
function loadAddon() {
  try {
    return require('../binding.js')
  } catch (cause) {
    const key = platformKey()
    const pkg = PREBUILT[key]
    const version = require('../package.json').version
    const advice = pkg
      ? `install its prebuilt binary: npm install ${pkg}@${version} (npm installs it by itself unless optional dependencies were omitted, e.g. --omit=optional or --no-optional)`
      : `no prebuilt binary exists for ${key}; build it from source with Rust (stable) and \`npm run build\` in the oxlock package`
    const e = new Error(`oxlock: cannot load the native addon for ${key}: ${advice}`, { cause })
    e.code = 'E_NO_BINARY'
    throw e
  }
}

const native = loadAddon()

const MAX_MS = 2147483647

// Calls waiting on the native side, by id (waiter ids and request ids).
const pending = new Map()

// A queued lock() keeps the process alive, as any pending timer would: every lock has a
// ttl, so the wait always ends. Idle, holding locks, or after destroy(), nothing is ref'd.
// The interval never fires in practice; it only carries the ref.
const keepAlive = setInterval(() => {}, MAX_MS)
keepAlive.unref()

// Waiters in the JS lock tables (lib/table.js) keep the process alive the same way.
let retained = 0

function addPending(id, w) {
  pending.set(id, w)
  if (pending.size === 1 && retained === 0) keepAlive.ref()
}

function removePending(id) {
  pending.delete(id)
  if (pending.size === 0 && retained === 0) keepAlive.unref()
}

function retain() {
  if (retained++ === 0 && pending.size === 0) keepAlive.ref()
}

function letGo() {
  if (--retained === 0 && pending.size === 0) keepAlive.unref()
}

// Set by lib/events.js: what to do with the events drain() returns.
let onEvents = () => {}
function setEventHandler(fn) {
  onEvents = fn
}

// Set by lib/sockets.js: the I/O the core wants after it ran (see flush there).
let onIo = () => {}
function setIoHandler(fn) {
  onIo = fn
}

// Numbers for the hot native calls go through `args` (see src/napi/memory.rs): filling
// three slots is far cheaper than converting three arguments. Decisions taken off this
// thread arrive through drain(); the wake-up function is weak, so it never keeps the
// process alive.
// drain() runs the tasks the wake-up was for, which may have I/O to do.
const { args, context } = native.init(new Float64Array(3), () => {
  try {
    deliverEvents()
  } finally {
    onIo()
  }
})

function deliverEvents() {
  onEvents(native.drain(context))
}

module.exports = {
  native,
  args,
  context,
  pending,
  addPending,
  removePending,
  retain,
  letGo,
  setEventHandler,
  setIoHandler,
  deliverEvents,
  MAX_MS,
}
