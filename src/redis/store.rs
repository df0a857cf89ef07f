//! Redlock as a `remote::Store`: the manager's calls on one key or several, each one
//! Redlock round (see `redlock.rs`).

use std::time::{Duration, Instant};

use super::ops::Op;
use super::redlock::{Decide, Endpoint, Redlock};
use crate::core::{Cause, Key};
use crate::remote::{Attempt, KeyWatch, Resources, Store, Validity};

impl<E: Endpoint> Store for Redlock<E> {
  const MULTI: bool = true;

  fn on_js_thread(&self) -> bool {
    self.nodes.iter().all(|n| n.on_js_thread())
  }

  async fn try_acquire(&self, key: &Key, token: &str, ttl: Duration) -> Attempt {
    self.acquire(Resources::one(key.clone()), token, ttl).await
  }

  async fn try_acquire_all(&self, keys: &[Key], token: &str, ttl: Duration) -> Attempt {
    self
      .acquire(Resources::many(keys.to_vec()), token, ttl)
      .await
  }

  async fn try_extend(&self, key: &Key, token: &str, ttl: Duration) -> Attempt {
    self.extend(Resources::one(key.clone()), token, ttl).await
  }

  async fn try_extend_all(&self, keys: &[Key], token: &str, ttl: Duration) -> Attempt {
    self
      .extend(Resources::many(keys.to_vec()), token, ttl)
      .await
  }

  fn set_reporter(&self, r: crate::remote::Reporter) {
    for n in &self.nodes {
      n.set_reporter(r.clone());
    }
  }

  fn watch(&self, key: &Key) -> Option<KeyWatch> {
    self.watch_keys(std::slice::from_ref(key))
  }

  fn watch_all(&self, keys: &[Key]) -> Option<KeyWatch> {
    self.watch_keys(keys)
  }

  async fn release(&self, key: &Key, token: &str, until: Instant) {
    self
      .release_everywhere(Resources::one(key.clone()), token, until)
      .await
  }

  async fn release_all(&self, keys: &[Key], token: &str, until: Instant) {
    self
      .release_everywhere(Resources::many(keys.to_vec()), token, until)
      .await
  }

  async fn quiesce(&self, within: Duration) {
    let until = Instant::now() + within;
    while Instant::now() < until && !self.nodes.iter().all(|n| n.idle()) {
      tokio::time::sleep(Duration::from_millis(2)).await;
    }
  }

  async fn inspect(&self, key: &Key) -> Result<bool, Vec<Cause>> {
    let tally = self
      .round_until(Decide::Answers, || Op::Inspect { key: key.clone() })
      .await;
    if tally.yes + tally.no() >= self.quorum {
      Ok(tally.yes > 0)
    } else {
      Err(tally.causes)
    }
  }

  async fn try_transfer(
    &self,
    key: &Key,
    from: &str,
    to: &str,
    ttl: Duration,
    handoffs: u32,
  ) -> Option<Validity> {
    let ttl_ms = ttl.as_millis() as u64;
    let start = Instant::now();
    let tally = self
      .round(|| Op::Transfer {
        key: key.clone(),
        from: from.to_owned(),
        to: to.to_owned(),
        ttl_ms,
        handoffs,
        fence: self.fencing,
      })
      .await;
    let keys = Resources::one(key.clone());
    if tally.yes >= self.quorum {
      if let Some(v) = self.validity(start, ttl, &tally) {
        self.raise_fence(&keys, &tally);
        if tally.yes < self.nodes.len() {
          // A node that did not pass it on (it refused for fairness, or was not reached)
          // may still hold the old token, which nobody will release now: delete it there
          // (sent again while the node cannot be reached; `from` is no one else's token).
          let until = self.attempt_expiry(start, ttl);
          for node in &self.nodes {
            drop(node.call(Op::Release {
              keys: keys.clone(),
              token: from.to_owned(),
              retry_until: Some(until),
              notify: false,
            }));
          }
        }
        return Some(v);
      }
    }
    // As after a failed acquire.
    if tally.yes > 0 || tally.yes + tally.no() < self.nodes.len() {
      let until = self.attempt_expiry(start, ttl);
      self.take_back(&keys, to, &tally.answered, until).await;
    }
    None
  }
}
