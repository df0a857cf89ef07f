//! What a remote store provides: single attempts on one key. Policy (retries, queues,
//! handoff, cancellation) is the manager's.

use std::future::Future;
use std::time::{Duration, Instant};

use super::KeyWatch;
use crate::core::{Cause, Key};

/// Local handoffs in a row after which a key goes back to the store when another client
/// is known to wait for it (see `Store::try_transfer`).
pub const FAIR_HANDOFFS: u32 = 8;
/// How long the next local caller lets a key given back for fairness be, before it tries
/// too: enough for a waiter elsewhere, woken by the release's notice, to take it, also
/// when its listening connection is still being opened on a loaded machine. Paid only
/// while a waiter elsewhere is known (every `FAIR_HANDOFFS` handoffs).
pub const FAIR_COURTESY: Duration = Duration::from_millis(50);

/// How long a lock taken or extended by an attempt is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
  /// Until when the lock is ours for sure (start of the attempt + ttl − clock drift).
  pub valid_until: Instant,
  /// When the key is gone from the store at the latest (the next local caller may start).
  pub expires_at: Instant,
  /// A number strictly greater than every earlier fence of the key, where the store has one.
  pub fence: Option<u64>,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
  Won(Validity),
  /// The store answered: the key is held by another token (or, for extend, not by ours).
  Held,
  /// Held, and the holder's ttl runs out at this instant (a waiter may try again then).
  HeldUntil(Instant),
  /// The store could not decide: why, per node.
  Failed(Vec<Cause>),
}

pub trait Store: Send + Sync + 'static {
  /// Whether every connection of the store is driven by the JS thread (`core::js_io`): the
  /// manager's tasks then run there too, and a request crosses no thread.
  fn on_js_thread(&self) -> bool {
    false
  }

  /// One attempt to take `key` for `ttl` under `token`. A partial success is undone
  /// by the store before it answers anything but `Won`.
  fn try_acquire(
    &self,
    key: &Key,
    token: &str,
    ttl: Duration,
  ) -> impl Future<Output = Attempt> + Send;

  /// One attempt to make `key` expire `ttl` from now while it holds `token`. Never deletes.
  fn try_extend(
    &self,
    key: &Key,
    token: &str,
    ttl: Duration,
  ) -> impl Future<Output = Attempt> + Send;

  /// Deletes `key` wherever it still holds `token`. Resolves once that is settled on a
  /// quorum (or nothing more can be learnt now); nodes that could not be reached are
  /// tried again in the background until `until`, when the key expires anyway.
  fn release(&self, key: &Key, token: &str, until: Instant) -> impl Future<Output = ()> + Send;

  /// Waits (at most `within`) until what was sent without being awaited (releases past
  /// their quorum, clean-ups) has reached the store: the last thing `destroy()` does, so
  /// a process that exits right after leaves no key behind.
  fn quiesce(&self, _within: Duration) -> impl Future<Output = ()> + Send {
    std::future::ready(())
  }

  /// Whether `key` is held (by anyone), or why the store cannot be reached: tells a
  /// caller whose wait ran out whether it waited on a holder or on an outage.
  fn inspect(&self, key: &Key) -> impl Future<Output = Result<bool, Vec<Cause>>> + Send;

  /// Optional: passes `key` from token `from` to token `to` in one step (a local handoff
  /// in one round trip instead of a delete and a set). `None`: not done, nothing changed
  /// for `to`; the caller releases `from` and acquires as usual. `handoffs`: how many
  /// local handoffs in a row brought the key to `from`; from `FAIR_HANDOFFS` on, a store
  /// that knows another client is waiting refuses, so no process keeps a key from others
  /// by passing it around inside itself.
  fn try_transfer(
    &self,
    _key: &Key,
    _from: &str,
    _to: &str,
    _ttl: Duration,
    _handoffs: u32,
  ) -> impl Future<Output = Option<Validity>> + Send {
    std::future::ready(None)
  }

  /// Whether the store takes several keys in one attempt, all or nothing (the `_all`
  /// calls below). A manager refuses multi-resource locks on a store without.
  const MULTI: bool = false;

  /// One attempt to take every key of `keys` (sorted, at least two) under `token`: all of
  /// them, or none (nothing is left set when the answer is not `Won`).
  fn try_acquire_all(
    &self,
    _keys: &[Key],
    _token: &str,
    _ttl: Duration,
  ) -> impl Future<Output = Attempt> + Send {
    std::future::ready(Attempt::Failed(Vec::new()))
  }

  /// `try_extend` of every key of `keys`: only while all of them still hold `token`.
  fn try_extend_all(
    &self,
    _keys: &[Key],
    _token: &str,
    _ttl: Duration,
  ) -> impl Future<Output = Attempt> + Send {
    std::future::ready(Attempt::Failed(Vec::new()))
  }

  /// `release` of every key of `keys` that still holds `token`.
  fn release_all(
    &self,
    _keys: &[Key],
    _token: &str,
    _until: Instant,
  ) -> impl Future<Output = ()> + Send {
    std::future::ready(())
  }

  /// `watch` on several keys: fires when any of them may have been freed.
  fn watch_all(&self, _keys: &[Key]) -> Option<KeyWatch> {
    None
  }

  /// Optional: where to tell connection failures and recoveries (the manager's `error`
  /// and `reconnect` events). Called once, before any other call.
  fn set_reporter(&self, _reporter: super::Reporter) {}

  /// Optional: a watch that fires when `key` may have been freed by another client. Taken
  /// after the first attempt found the key held; it must fire once as soon as it listens
  /// (the key may have been freed since that attempt). `None`: the waiter retries on its
  /// timer only.
  fn watch(&self, _key: &Key) -> Option<KeyWatch> {
    None
  }
}
