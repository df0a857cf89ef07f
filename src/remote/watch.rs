//! A waiter's ear on the store: stores that can tell when a key may have been freed
//! (PostgreSQL's NOTIFY, Redis pub/sub) hand the attempt loop a `KeyWatch`, so a waiter
//! tries again at once instead of at its next retry. The retry timer stays as the fallback
//! for a notification that is lost.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

/// What the store's listener holds for one watch.
#[derive(Default)]
pub struct WatchState {
  notify: Notify,
  /// When the current holder's ttl runs out, if the store told us.
  holder_expires: Mutex<Option<Instant>>,
}

impl WatchState {
  /// The key may be free now. Kept as a permit if nobody is waiting yet, so a notice that
  /// arrives between an attempt's answer and the wait is not lost.
  pub fn freed(&self) {
    self.notify.notify_one();
  }

  /// The holder found by the last attempt expires at `at` (or the store does not know).
  pub fn holder_expires(&self, at: Option<Instant>) {
    *self.holder_expires.lock() = at;
  }
}

/// One waiter's subscription; unsubscribes when dropped.
pub struct KeyWatch {
  state: Arc<WatchState>,
  unsubscribe: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl KeyWatch {
  pub fn new(state: Arc<WatchState>, unsubscribe: Box<dyn FnOnce() + Send + Sync>) -> Self {
    KeyWatch {
      state,
      unsubscribe: Some(unsubscribe),
    }
  }

  /// The holder found by the last attempt expires at `at` (or that is unknown).
  pub fn holder_expires(&self, at: Option<Instant>) {
    self.state.holder_expires(at);
  }

  /// Resolves when the key may have been freed: a notice, or the holder's expiry. The
  /// expiry counts once: only a new answer that the key is held sets it again, so a store
  /// that stops answering is not asked again and again once that moment has passed.
  pub async fn freed(&self) {
    let expires = *self.state.holder_expires.lock();
    match expires {
      Some(at) => {
        tokio::select! {
          _ = self.state.notify.notified() => {}
          _ = tokio::time::sleep_until(at.into()) => {
            self.state.holder_expires.lock().take();
          }
        }
      }
      None => self.state.notify.notified().await,
    }
  }
}

impl Drop for KeyWatch {
  fn drop(&mut self) {
    if let Some(u) = self.unsubscribe.take() {
      u();
    }
  }
}

/// Waits for `watch` to fire, or forever without one.
pub async fn freed(watch: Option<&KeyWatch>) {
  match watch {
    Some(w) => w.freed().await,
    None => std::future::pending().await,
  }
}
