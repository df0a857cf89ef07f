//! A Store in memory for the manager tests.
//!
//! `FakeStore` is a cheap handle (clone it before giving it to the manager) over one map
//! of key → (token, expiry), with knobs: `down` (every op fails as an unreachable node
//! would), a delay before every op, a flag that makes `try_acquire` panic, and counters
//! of calls per op (counted when the call starts, before the delay).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Attempt, KeyWatch, Store, Validity, WatchState};
use crate::core::{Cause, CauseKind, Key};

/// The message of the panic `panic_on_acquire` injects (tests silence it in the hook).
pub const INJECTED_PANIC: &str = "fake store: injected panic";

/// The label of the fake's only node.
pub const NODE: &str = "fake:1";

/// Calls per op, counted when the call starts.
#[derive(Default)]
pub struct Calls {
  pub acquire: AtomicUsize,
  pub extend: AtomicUsize,
  pub release: AtomicUsize,
  pub inspect: AtomicUsize,
  pub transfer: AtomicUsize,
}

#[derive(Default)]
pub struct State {
  keys: Mutex<HashMap<Vec<u8>, (String, Instant)>>,
  /// Every op fails (`Failed` with one `Refused` cause; `inspect` is `Err`).
  pub down: AtomicBool,
  /// Milliseconds every op waits before it acts.
  pub delay_ms: AtomicU64,
  /// `try_acquire` panics (after its delay).
  pub panic_on_acquire: AtomicBool,
  pub calls: Calls,
  /// The store hands out watches (as PostgreSQL's LISTEN does), told of foreign releases
  /// (`release_foreign`) and of the holder's expiry on every `Held`.
  pub watchable: AtomicBool,
  watches: Mutex<Vec<(Vec<u8>, Arc<WatchState>)>>,
}

#[derive(Clone, Default)]
pub struct FakeStore(Arc<State>);

impl Deref for FakeStore {
  type Target = State;

  fn deref(&self) -> &State {
    &self.0
  }
}

fn count(c: &AtomicUsize) {
  c.fetch_add(1, Ordering::SeqCst);
}

fn validity(now: Instant, ttl: Duration) -> Validity {
  Validity {
    valid_until: now + ttl,
    expires_at: now + ttl,
    fence: None,
  }
}

impl State {
  pub fn set_down(&self, down: bool) {
    self.down.store(down, Ordering::SeqCst);
  }

  pub fn set_delay(&self, d: Duration) {
    self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
  }

  pub fn set_panic_on_acquire(&self, on: bool) {
    self.panic_on_acquire.store(on, Ordering::SeqCst);
  }

  pub fn is_down(&self) -> bool {
    self.down.load(Ordering::SeqCst)
  }

  /// The token that holds `key` now (expired entries count as absent).
  pub fn holder(&self, key: &[u8]) -> Option<String> {
    let now = Instant::now();
    match self.keys.lock().get(key) {
      Some((token, exp)) if *exp > now => Some(token.clone()),
      _ => None,
    }
  }

  /// Sets `key` to `token` for `ttl`, whoever held it (a foreign holder).
  pub fn put(&self, key: &[u8], token: &str, ttl: Duration) {
    let exp = Instant::now() + ttl;
    self
      .keys
      .lock()
      .insert(key.to_vec(), (token.to_owned(), exp));
  }

  /// A foreign holder of `key` releases it, and the store notifies its watches.
  pub fn release_foreign(&self, key: &[u8]) {
    self.keys.lock().remove(key);
    for (k, w) in self.watches.lock().iter() {
      if k == key {
        w.freed();
      }
    }
  }

  /// A foreign holder releases `key` and another foreign holder takes it at once (no
  /// attempt can come between), and the store notifies its watches.
  pub fn retake_foreign(&self, key: &[u8], token: &str, ttl: Duration) {
    self.put(key, token, ttl);
    for (k, w) in self.watches.lock().iter() {
      if k == key {
        w.freed();
      }
    }
  }

  /// Watches handed out and not dropped yet.
  pub fn live_watches(&self) -> usize {
    self
      .watches
      .lock()
      .iter()
      .filter(|(_, w)| Arc::strong_count(w) > 1)
      .count()
  }

  /// The store loses `key` (evicted, flushed, failed over).
  pub fn forget(&self, key: &[u8]) {
    self.keys.lock().remove(key);
  }

  /// Keys held now (expired entries not counted).
  pub fn live_keys(&self) -> usize {
    let now = Instant::now();
    self.keys.lock().values().filter(|(_, e)| *e > now).count()
  }

  pub fn causes(&self) -> Vec<Cause> {
    vec![Cause {
      node: NODE.into(),
      kind: CauseKind::Refused,
      message: "connection refused".into(),
    }]
  }

  async fn pause(&self) {
    let ms = self.delay_ms.load(Ordering::SeqCst);
    if ms > 0 {
      tokio::time::sleep(Duration::from_millis(ms)).await;
    }
  }

  fn acquire_now(&self, key: &[u8], token: &str, ttl: Duration) -> Attempt {
    let now = Instant::now();
    let mut keys = self.keys.lock();
    match keys.get(key) {
      Some((_, exp)) if *exp > now => {
        if self.watchable.load(Ordering::SeqCst) {
          Attempt::HeldUntil(*exp)
        } else {
          Attempt::Held
        }
      }
      _ => {
        keys.insert(key.to_vec(), (token.to_owned(), now + ttl));
        Attempt::Won(validity(now, ttl))
      }
    }
  }

  /// Compare-and-set of `key`'s token from `from` to `to` (with a fresh ttl).
  fn swap_now(&self, key: &[u8], from: &str, to: &str, ttl: Duration) -> Option<Validity> {
    let now = Instant::now();
    let mut keys = self.keys.lock();
    match keys.get_mut(key) {
      Some((token, exp)) if token == from && *exp > now => {
        *token = to.to_owned();
        *exp = now + ttl;
        Some(validity(now, ttl))
      }
      _ => None,
    }
  }

  fn release_now(&self, key: &[u8], token: &str) {
    let mut keys = self.keys.lock();
    if keys.get(key).is_some_and(|(t, _)| t == token) {
      keys.remove(key);
    }
  }
}

impl Store for FakeStore {
  async fn try_acquire(&self, key: &Key, token: &str, ttl: Duration) -> Attempt {
    count(&self.calls.acquire);
    self.pause().await;
    if self.panic_on_acquire.load(Ordering::SeqCst) {
      panic!("{}", INJECTED_PANIC);
    }
    if self.is_down() {
      return Attempt::Failed(self.causes());
    }
    self.acquire_now(key, token, ttl)
  }

  async fn try_extend(&self, key: &Key, token: &str, ttl: Duration) -> Attempt {
    count(&self.calls.extend);
    self.pause().await;
    if self.is_down() {
      return Attempt::Failed(self.causes());
    }
    match self.swap_now(key, token, token, ttl) {
      Some(v) => Attempt::Won(v),
      None => Attempt::Held,
    }
  }

  async fn release(&self, key: &Key, token: &str, _until: Instant) {
    count(&self.calls.release);
    self.pause().await;
    if !self.is_down() {
      self.release_now(key, token);
    }
  }

  async fn inspect(&self, key: &Key) -> Result<bool, Vec<Cause>> {
    count(&self.calls.inspect);
    self.pause().await;
    if self.is_down() {
      return Err(self.causes());
    }
    Ok(self.holder(key).is_some())
  }

  fn watch(&self, key: &Key) -> Option<KeyWatch> {
    if !self.watchable.load(Ordering::SeqCst) {
      return None;
    }
    let state = Arc::new(WatchState::default());
    // Listening at once: fire once, as a real store does (see `Store::watch`).
    state.freed();
    self.watches.lock().push((key.to_vec(), state.clone()));
    Some(KeyWatch::new(state, Box::new(|| {})))
  }

  async fn try_transfer(
    &self,
    key: &Key,
    from: &str,
    to: &str,
    ttl: Duration,
    _handoffs: u32,
  ) -> Option<Validity> {
    count(&self.calls.transfer);
    self.pause().await;
    if self.is_down() {
      return None;
    }
    self.swap_now(key, from, to, ttl)
  }
}
