//! Redlock over N independent masters, as redis.io specifies it: every node at once, a
//! decision as soon as the quorum outcome is known (a hung node never holds an attempt
//! past the per-node timeout), elapsed time on a monotonic clock, success only with
//! `votes ≥ quorum` and `ttl − elapsed − drift > 0`, release on every node after a failed
//! attempt, and retries after `retryDelay ± retryJitter`.

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::node::{Node, Reply};
use crate::config::RedisConfig;

pub struct Redlock {
  nodes: Vec<Arc<Node>>,
  quorum: usize,
  drift_factor: f64,
  retry_count: i64,
  retry_delay: f64,
  retry_jitter: f64,
}

pub struct Acquired {
  pub token: String,
  /// Until when the lock is ours for sure (start of the winning attempt + ttl − drift).
  pub valid_until: Instant,
  /// When the key is gone from every node that took it, at the latest.
  pub expires_at: Instant,
  pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
  /// A quorum answered, and the resource was held: node-redlock's LockError.
  Busy { attempts: u32 },
  /// No quorum could be reached; `causes` says why, per node.
  Unavailable { attempts: u32, causes: Vec<String> },
  /// extend(): a quorum says the key no longer holds our token.
  Lost,
}

/// The votes of one round.
#[derive(Default)]
struct Tally {
  yes: usize,
  no: usize,
  causes: Vec<String>,
}

impl Redlock {
  pub fn new(nodes: Vec<Arc<Node>>, cfg: &RedisConfig) -> Redlock {
    Redlock {
      quorum: nodes.len() / 2 + 1,
      nodes,
      drift_factor: cfg.drift_factor,
      retry_count: cfg.retry_count,
      retry_delay: cfg.retry_delay_ms,
      retry_jitter: cfg.retry_jitter_ms,
    }
  }

  /// node-redlock's drift: `driftFactor × ttl + 2` ms (Redis expires with 1 ms precision).
  fn drift(&self, ttl: Duration) -> Duration {
    Duration::from_millis((self.drift_factor * ttl.as_millis() as f64).round() as u64 + 2)
  }

  fn more_attempts(&self, attempts: u32) -> bool {
    self.retry_count < 0 || (attempts as i64) <= self.retry_count
  }

  fn retry_pause(&self) -> Duration {
    let mut b = [0u8; 4];
    let unit = if getrandom::fill(&mut b).is_ok() {
      u32::from_le_bytes(b) as f64 / u32::MAX as f64
    } else {
      0.5
    };
    let ms = self.retry_delay + (2.0 * unit - 1.0) * self.retry_jitter;
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
  }

  /// Takes `key` on a quorum with a fresh 128-bit token, or says why not.
  /// `cancelled` is checked between attempts.
  pub async fn acquire(
    &self,
    key: &str,
    ttl: Duration,
    cancelled: impl Fn() -> bool,
  ) -> Result<Acquired, Failure> {
    let token = crate::token::random_token_hex().map_err(|e| Failure::Unavailable {
      attempts: 0,
      causes: vec![format!("no OS randomness for a token: {e}")],
    })?;
    let ttl_ms = ttl.as_millis() as u64;
    let mut attempts = 0u32;
    loop {
      attempts += 1;
      let start = Instant::now();
      let tally = self.round(true, |n| {
        let (key, token) = (key.to_owned(), token.clone());
        async move { n.acquire(&key, &token, ttl_ms).await }
      });
      let tally = tally.await;
      let valid_until = start + ttl.saturating_sub(self.drift(ttl));
      let replied = Instant::now();
      if tally.yes >= self.quorum && replied < valid_until {
        return Ok(Acquired {
          token,
          valid_until,
          // Every node counted its PX from when the SET arrived, before its reply did;
          // Redis expires with 1 ms precision.
          expires_at: replied + ttl + Duration::from_millis(2),
          attempts,
        });
      }
      // Partial or late: take back whatever we set, everywhere, before anything else.
      self.release(key, &token).await;
      if !self.more_attempts(attempts) || cancelled() {
        return Err(if tally.yes + tally.no >= self.quorum {
          Failure::Busy { attempts }
        } else {
          Failure::Unavailable {
            attempts,
            causes: tally.causes,
          }
        });
      }
      tokio::time::sleep(self.retry_pause()).await;
      if cancelled() {
        return Err(Failure::Busy { attempts });
      }
    }
  }

  /// Takes `key` over from `from` (a holder of this process handing it on) with a fresh
  /// token, in one round. On failure both tokens are taken back everywhere, and the
  /// caller falls back to `acquire`.
  pub async fn transfer(&self, key: &str, from: &str, ttl: Duration) -> Option<Acquired> {
    let token = crate::token::random_token_hex().ok()?;
    let ttl_ms = ttl.as_millis() as u64;
    let start = Instant::now();
    let tally = self
      .round(true, |n| {
        let (key, from, to) = (key.to_owned(), from.to_owned(), token.clone());
        async move { n.transfer(&key, &from, &to, ttl_ms).await }
      })
      .await;
    let valid_until = start + ttl.saturating_sub(self.drift(ttl));
    let replied = Instant::now();
    if tally.yes >= self.quorum && replied < valid_until {
      return Some(Acquired {
        token,
        valid_until,
        expires_at: replied + ttl + Duration::from_millis(2),
        attempts: 1,
      });
    }
    self.release(key, &token).await;
    self.release(key, from).await;
    None
  }

  /// Makes the key expire `ttl` from now on a quorum, while it still holds `token`.
  /// Never deletes anything: a slow or failed extend leaves the lock as it was.
  /// Returns the new validity end and the new latest expiry.
  pub async fn extend(
    &self,
    key: &str,
    token: &str,
    ttl: Duration,
    valid_until: Instant,
  ) -> Result<(Instant, Instant), Failure> {
    let ttl_ms = ttl.as_millis() as u64;
    let mut attempts = 0u32;
    loop {
      attempts += 1;
      let start = Instant::now();
      let tally = self
        .round(true, |n| {
          let (key, token) = (key.to_owned(), token.to_owned());
          async move { n.extend(&key, &token, ttl_ms).await }
        })
        .await;
      let new_valid = start + ttl.saturating_sub(self.drift(ttl));
      if tally.yes >= self.quorum && Instant::now() < new_valid {
        return Ok((new_valid, Instant::now() + ttl + Duration::from_millis(2)));
      }
      if tally.no > self.nodes.len() - self.quorum {
        return Err(Failure::Lost);
      }
      if !self.more_attempts(attempts) || Instant::now() >= valid_until {
        return Err(if Instant::now() >= valid_until {
          Failure::Lost
        } else {
          Failure::Unavailable {
            attempts,
            causes: tally.causes,
          }
        });
      }
      tokio::time::sleep(
        self
          .retry_pause()
          .min(valid_until.saturating_duration_since(Instant::now())),
      )
      .await;
    }
  }

  /// Deletes the key on every node where it holds `token`; waits for every node (each
  /// bounded by the per-node timeout) so that, once this returns, the key is gone
  /// wherever a node answered.
  pub async fn release(&self, key: &str, token: &str) {
    self
      .round(false, |n| {
        let (key, token) = (key.to_owned(), token.to_owned());
        async move { n.release(&key, &token).await }
      })
      .await;
  }

  /// Sends `op` to every node at once. With `early`, stops as soon as the outcome of the
  /// quorum is known either way.
  async fn round<F, Fut>(&self, early: bool, op: F) -> Tally
  where
    F: Fn(Arc<Node>) -> Fut,
    Fut: Future<Output = Reply>,
  {
    let n = self.nodes.len();
    let mut pending: FuturesUnordered<_> = self
      .nodes
      .iter()
      .map(|node| {
        let label = node.label.clone();
        let fut = op(node.clone());
        async move { (label, fut.await) }
      })
      .collect();
    let mut t = Tally::default();
    while let Some((label, reply)) = pending.next().await {
      match reply {
        Reply::Yes => t.yes += 1,
        Reply::No => t.no += 1,
        Reply::Failed(why) => t.causes.push(format!("{label}: {why}")),
      }
      let against = n - t.yes - pending.len();
      if early && (t.yes >= self.quorum || against > n - self.quorum) {
        break;
      }
    }
    t
  }
}
