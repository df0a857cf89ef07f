'use strict'

// The lock table of an in-memory manager with `scope: 'instance'` (the default). Only the JS
// thread that made the manager ever uses it, so it lives here: one N-API call costs more than
// a whole lock cycle of a JS lock (README, Performance), and this path makes none. A
// `scope: 'process'` manager uses the native table that worker threads share (src/memory/).
//
// Per key: the holder (a lock id, increasing per table: the fence) with its expiry, and a
// FIFO of waiters (a doubly linked list: a waiter that gives up is unlinked at once). Time is
// monotonic (performance.now()); expiries are shown as epoch ms. A key with waiters has one
// timer at its holder's expiry, so the first waiter gets the key at that moment; an idle key
// costs little (its state is kept for reuse: a sweep when the table has doubled drops those
// not locked since the sweep before, and `size` drops them all), and a held key nobody waits
// for is checked lazily.

const { performance } = require('node:perf_hooks') // also in vm contexts without the global
const { randomBytes } = require('node:crypto')
const { retain, letGo, MAX_MS } = require('./native.js')

const MIN_SWEEP = 1024
// A monotonic instant as epoch ms, against the wall clock now (as the native table does):
// callers compare it with Date.now(), which may have stepped since the process started.
const toEpoch = (mono) => Math.floor(Date.now() + (mono - performance.now()))

// Lock ids, the fences: one counter for every table on this thread, so a manager made again
// (or one beside it) never hands out a smaller fence. It hangs on `process` under a
// registered symbol, so every instance of this module (a test runner's registry, a vm
// context) shares it; it starts from the clock in µs.
const FENCES = (process[Symbol.for('oxlock.fences')] ??= { last: Date.now() * 1000 })

class KeyState {
  constructor(holder, expires) {
    this.holder = holder // 0: none
    this.expires = expires
    this.head = null
    this.tail = null
    this.waiting = 0 // live waiters in the list
    this.timer = null
    this.timerAt = 0
    this.pinTtl = 0 // expires === Infinity: pinned by using() (`pin`), shown as now + pinTtl
    this.used = true // locked since the last sweep (#sweep)
  }
}

class LockTable {
  /** `waitMs`: how long a contended lock() may wait (-1: no limit). */
  constructor(waitMs) {
    this.waitMs = waitMs
    this.keys = new Map()
    this.sweepAt = MIN_SWEEP
    this.queued = 0 // waiters in all queues: while there are any, the process stays alive
    this.lastBusy = null // the state take() found held, for the enqueue() that follows it
  }

  /** Takes `key` now: the new lock id, 0 when held and the caller may not wait, or -1 when
   *  it must wait (then `enqueue`). `pinned`: taken pinned (see `pin`), for an
   *  argument-less using(). */
  take(key, ttl, pinned = false) {
    let st = this.keys.get(key)
    // A key others wait for: the caller queues behind them, whether or not its holder's ttl
    // ran out (the key's timer hands it to the first of them then), so no clock read.
    if (st !== undefined && st.waiting !== 0) {
      this.lastBusy = st
      return this.waitMs === 0 ? 0 : -1
    }
    // The clock only where it decides something: a holder's expiry, or the new one. (A
    // clock read costs as much as the rest of the call.)
    let now = -1
    if (st !== undefined && st.holder !== 0) {
      now = performance.now()
      if (st.expires > now) {
        this.lastBusy = st
        return this.waitMs === 0 ? 0 : -1
      }
      // The holder's ttl ran out before anyone looked (and nobody waits): the key is free.
      this.#handOff(key, st, now)
    }
    if (!pinned && now < 0) now = performance.now()
    const id = ++FENCES.last
    const expires = pinned ? Infinity : now + ttl
    if (st === undefined) {
      st = new KeyState(id, expires)
      this.keys.set(key, st)
      if (this.keys.size >= this.sweepAt) this.#sweep(now < 0 ? performance.now() : now)
    } else {
      // An idle key's state, kept for reuse (no allocation, no map insert).
      st.holder = id
      st.expires = expires
      st.used = true
    }
    if (pinned) st.pinTtl = ttl
    return id
  }

  /** Queues waiter `w` behind the holder of `key`: `w` has `key`, `ttl`, `pins`, `next`, `gone`,
   *  `deadline` for the table and `granted(id)`, `timedOut()`, `destroyed()` for its caller. */
  enqueue(key, w) {
    // Called right after take() said -1 for `key`: the state it found, with no second lookup.
    const st = this.lastBusy ?? this.keys.get(key)
    this.lastBusy = null
    w.prev = st.tail
    if (st.tail === null) st.head = w
    else st.tail.next = w
    st.tail = w
    st.waiting++
    if (this.queued++ === 0) retain() // queued calls keep the process alive, as a pending timer would
    if (this.waitMs > 0) w.deadline = setTimeout(() => this.#timeOut(w), Math.min(MAX_MS, this.waitMs))
    this.#arm(key, st)
  }

  /** Takes waiter `w` out of its queue (abort). False if it holds the key already. */
  cancel(w) {
    if (w.gone) return false
    this.#leave(w)
    return true
  }

  /** Releases the lock if `id` still holds `key`; the next waiter gets it. */
  release(key, id) {
    const st = this.keys.get(key)
    if (st === undefined || st.holder !== id) return
    if (st.waiting === 0) {
      // Nobody waits (the usual case): no clock read; the state stays for the key's next
      // lock, until a sweep (deleting and re-adding map entries made V8's heap grow).
      st.holder = 0
      if (st.timer !== null) {
        clearTimeout(st.timer)
        st.timer = null
      }
      return
    }
    this.#handOff(key, st, -1)
  }

  /** Makes `id`'s lock on `key` expire `ttl` ms from now. False if it no longer holds it. */
  extend(key, id, ttl) {
    const st = this.keys.get(key)
    const now = performance.now()
    if (st === undefined || st.holder !== id || st.expires <= now) return false
    if (st.expires !== Infinity) st.expires = now + ttl // a pinned lock stays pinned
    if (st.waiting > 0) this.#arm(key, st) // a shorter ttl hands the key on sooner
    return true
  }

  /** Holds `id`'s lock on `key` until it is released, as if extended by `ttl` ms forever:
   *  using() with no bound, while its function runs (no timers). False if not held. */
  pin(key, id, ttl) {
    const st = this.keys.get(key)
    if (st === undefined || st.holder !== id || st.expires <= performance.now()) return false
    st.expires = Infinity
    st.pinTtl = ttl
    // A timer armed for waiters stays: when it fires it finds the key pinned and does
    // nothing. (Clearing it here made every handoff between using() calls set a timer in
    // #handOff and clear it here.)
    return true
  }

  /** When `id`'s lock on `key` expires, in epoch ms; 0 if it no longer holds it (also once
   *  it expired with a waiter queued: the key is that waiter's as soon as this thread runs
   *  its timer, or a newcomer looks). */
  expiration(key, id) {
    const st = this.keys.get(key)
    if (st === undefined || st.holder !== id) return 0
    const now = performance.now()
    if (st.expires === Infinity) return toEpoch(now + st.pinTtl)
    return st.waiting > 0 && st.expires <= now ? 0 : toEpoch(st.expires)
  }

  /** A lock's token: unguessable, drawn when first read. */
  token() {
    return randomBytes(16).toString('hex')
  }

  isLocked(key) {
    const st = this.keys.get(key)
    return st !== undefined && st.holder !== 0 && st.expires > performance.now()
  }

  /** Keys held or awaited (expired, unawaited holders are swept first). */
  size() {
    this.#sweep(performance.now(), true)
    return this.keys.size
  }

  /** Empties the table; `reject(w)` is called for every waiter still waiting. */
  destroy(reject) {
    for (const st of this.keys.values()) {
      if (st.timer !== null) clearTimeout(st.timer)
      for (let w = st.head; w !== null; w = w.next) {
        if (w.gone) continue
        this.#settleWaiter(w)
        reject(w)
      }
    }
    this.keys.clear()
  }

  // The key passes to its first live waiter (now + its ttl; `now` -1: not read yet), or is
  // freed. A waiter that pins the key at once (an argument-less using()) needs no clock read:
  // the clock costs as much as the rest of a handoff.
  #handOff(key, st, now) {
    const w = st.head // waiters that gave up were unlinked (#leave)
    if (w === null) {
      st.holder = 0 // idle, kept until a sweep
      if (st.timer !== null) {
        clearTimeout(st.timer)
        st.timer = null
      }
      return
    }
    this.#unlink(st, w)
    this.#settleWaiter(w)
    const id = ++FENCES.last
    st.holder = id
    if (w.pins) {
      st.expires = Infinity
      st.pinTtl = w.ttl
    } else st.expires = (now < 0 ? performance.now() : now) + w.ttl
    if (st.waiting > 0) this.#arm(key, st)
    w.granted(id)
  }

  // A waiter leaves the queue (granted, timed out, aborted, destroyed): its timer and its
  // hold on the process go.
  #settleWaiter(w) {
    w.gone = true
    if (w.deadline !== undefined) clearTimeout(w.deadline)
    if (--this.queued === 0) letGo()
  }

  #unlink(st, w) {
    if (w.prev === null) st.head = w.next
    else w.prev.next = w.next
    if (w.next === null) st.tail = w.prev
    else w.next.prev = w.prev
    w.prev = w.next = null
    st.waiting--
  }

  #leave(w) {
    const st = this.keys.get(w.key)
    this.#settleWaiter(w)
    if (st === undefined) return
    this.#unlink(st, w)
    if (st.waiting === 0) {
      if (st.timer !== null) {
        clearTimeout(st.timer)
        st.timer = null
      }
    }
  }

  #timeOut(w) {
    w.deadline = undefined
    if (w.gone) return
    this.#leave(w)
    w.timedOut()
  }

  // One timer per awaited key, at its holder's expiry (kept if it fires no later).
  #arm(key, st) {
    if (st.expires === Infinity) return // pinned: handed on at its release
    if (st.timer !== null) {
      if (st.timerAt <= st.expires) return
      clearTimeout(st.timer)
    }
    st.timerAt = st.expires
    // (setTimeout fires at once beyond MAX_MS: clamped, and #check then arms again.)
    st.timer = setTimeout(() => this.#check(key, st), Math.min(MAX_MS, Math.max(0, st.expires - performance.now()) + 1))
    st.timer.unref() // the waiters keep the process alive, not this timer
  }

  #check(key, st) {
    st.timer = null
    if (this.keys.get(key) !== st || st.waiting === 0) return
    const now = performance.now()
    if (st.expires <= now) this.#handOff(key, st, now)
    else this.#arm(key, st) // extended meanwhile
  }

  // Drops idle states (and expired holders nobody waits for). `all` false (the table has
  // doubled): a state locked since the last sweep gets a second chance, so a working set of
  // keys keeps its states; a key used once goes at the next sweep but one.
  #sweep(now, all = false) {
    for (const [key, st] of this.keys) {
      if (st.waiting !== 0 || (st.holder !== 0 && st.expires > now)) continue
      if (!all && st.used) st.used = false
      else this.keys.delete(key)
    }
    this.sweepAt = Math.max(MIN_SWEEP, this.keys.size * 2)
  }
}

module.exports = { LockTable }
