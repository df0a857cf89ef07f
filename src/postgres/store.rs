//! The PostgreSQL `Store`: one row per held key in the lock table, each decision one
//! statement on the database's clock, a fence from a sequence on every acquisition, and
//! waiters woken by NOTIFY (`listener.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

use super::listener::Listener;
use super::pool::{Failure, Pool};
use super::sql::Statements;
use crate::core::{runtime, Cause, Key};
use crate::remote::{Attempt, KeyWatch, Store, Validity};

/// One database's clock against ours: a rate difference only (one clock decides expiry),
/// bounded as node-redlock bounds drift, plus what a statement's round trip blurs.
const DRIFT_FACTOR: f64 = 0.01;
const DRIFT_MIN: Duration = Duration::from_millis(2);
/// How often a release that could not reach the database is tried again.
const RELEASE_RETRY: Duration = Duration::from_millis(200);

pub struct PgStore {
  pool: Arc<Pool>,
  sql: Arc<Statements>,
  /// The table and sequence exist (checked once per store, again after a failure).
  schema: OnceCell<()>,
  listener: Arc<Listener>,
  /// Releases still being retried in the background.
  background: Arc<AtomicUsize>,
}

impl PgStore {
  pub fn new(pool: Pool, table: &str) -> Result<PgStore, crate::core::Error> {
    let listener = Listener::new(&pool.db, table, pool.connect_timeout + pool.query_timeout)?;
    Ok(PgStore {
      pool: Arc::new(pool),
      sql: Arc::new(Statements::new(table)),
      schema: OnceCell::new(),
      listener,
      background: Arc::new(AtomicUsize::new(0)),
    })
  }

  /// The table and its sequence exist (created if absent: creating needs the CREATE
  /// privilege, using them does not), and the sequence hands out numbers in order.
  async fn ready(&self) -> Result<(), Failure> {
    self
      .schema
      .get_or_try_init(|| async {
        let rows = self.pool.query(&self.sql.lookup, &[]).await?;
        let (table, cache, column): (bool, Option<i64>, bool) =
          (rows[0].get(0), rows[0].get(1), rows[0].get(2));
        if !table || cache.is_none() || !column {
          self
            .pool
            .batch(&self.sql.schema)
            .await
            .map_err(Failure::NotSent)?;
        }
        match cache {
          Some(n) if n > 1 => Err(Failure::NotSent(Cause {
            node: self.pool.label().to_string(),
            kind: crate::core::CauseKind::Server,
            message: format!(
              "the sequence {} has CACHE {n}: each session would draw from its own block and \
               fences could go back (ALTER SEQUENCE ... CACHE 1)",
              self.sql.sequence
            ),
          })),
          _ => Ok(()),
        }
      })
      .await
      .map(|_| ())
  }

  async fn query(
    &self,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
  ) -> Result<Vec<tokio_postgres::Row>, Failure> {
    self.ready().await?;
    self.pool.query(sql, params).await
  }

  /// An acquisition whose answer is unknown may have taken the key under `token`, which
  /// nobody holds: delete it (compare-and-delete, so only that attempt's row) in the
  /// background until it would have expired.
  fn clean_up_unknown(&self, failure: Failure, key: &Key, token: &str, ttl: Duration) -> Cause {
    if let Failure::Sent(_) = &failure {
      self.release_in_background(key, token, Instant::now() + ttl, Duration::ZERO);
    }
    failure.cause()
  }

  fn validity(start: Instant, end: Instant, ttl: Duration, fence: Option<i64>) -> Option<Validity> {
    let drift = ttl.mul_f64(DRIFT_FACTOR) + DRIFT_MIN;
    let valid_until = (start + ttl).checked_sub(drift)?;
    (valid_until > end).then_some(Validity {
      valid_until,
      expires_at: end + ttl,
      fence: fence.map(|f| f as u64),
    })
  }
}

fn ms(ttl: Duration) -> f64 {
  ttl.as_secs_f64() * 1000.0
}

impl Store for PgStore {
  async fn try_acquire(&self, key: &Key, token: &str, ttl: Duration) -> Attempt {
    let start = Instant::now();
    let k: &[u8] = key;
    let rows = match self.query(&self.sql.acquire, &[&k, &token, &ms(ttl)]).await {
      Ok(rows) => rows,
      Err(f) => return Attempt::Failed(vec![self.clean_up_unknown(f, key, token, ttl)]),
    };
    let end = Instant::now();
    let fence: Option<i64> = rows.first().and_then(|r| r.get(0));
    if let Some(f) = fence {
      return match Self::validity(start, end, ttl, Some(f)) {
        Some(v) => Attempt::Won(v),
        None => {
          // Taken, but too late to be of use: give it back.
          self.release(key, token, end + ttl).await;
          Attempt::Held
        }
      };
    }
    // Held: when the holder's ttl runs out, if the row was visible.
    let left: Option<f64> = rows.first().and_then(|r| r.get(1));
    match left {
      Some(ms) => Attempt::HeldUntil(end + Duration::from_secs_f64(ms.max(0.0) / 1000.0)),
      None => Attempt::Held,
    }
  }

  async fn try_extend(&self, key: &Key, token: &str, ttl: Duration) -> Attempt {
    let start = Instant::now();
    let k: &[u8] = key;
    match self.query(&self.sql.extend, &[&k, &token, &ms(ttl)]).await {
      Ok(rows) if rows.is_empty() => Attempt::Held,
      Ok(_) => match Self::validity(start, Instant::now(), ttl, None) {
        Some(v) => Attempt::Won(v),
        None => Attempt::Failed(vec![self.slow(ttl)]),
      },
      Err(f) => Attempt::Failed(vec![f.cause()]),
    }
  }

  async fn release(&self, key: &Key, token: &str, until: Instant) {
    let k: &[u8] = key;
    if self.query(&self.sql.release, &[&k, &token]).await.is_ok() {
      return;
    }
    // Not reached: keep trying in the background until the row expires anyway.
    self.release_in_background(key, token, until, RELEASE_RETRY);
  }

  async fn quiesce(&self, within: Duration) {
    let until = Instant::now() + within;
    while Instant::now() < until && self.background.load(Ordering::Acquire) > 0 {
      tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The last thing destroy() does: nothing of ours stays open.
    self.listener.stop();
    self.pool.close();
  }

  async fn inspect(&self, key: &Key) -> Result<bool, Vec<Cause>> {
    let k: &[u8] = key;
    match self.query(&self.sql.inspect, &[&k]).await {
      Ok(rows) => Ok(rows.first().is_some_and(|r| r.get::<_, bool>(0))),
      Err(f) => Err(vec![f.cause()]),
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
    let handoffs = handoffs.min(i32::MAX as u32) as i32;
    let start = Instant::now();
    let k: &[u8] = key;
    let rows = match self
      .query(&self.sql.transfer, &[&k, &from, &to, &ms(ttl), &handoffs])
      .await
    {
      Ok(rows) => rows,
      Err(f) => {
        // It may have passed the key to `to`, which nobody will hold.
        self.clean_up_unknown(f, key, to, ttl);
        return None;
      }
    };
    let fence: i64 = rows.first()?.get(0);
    let end = Instant::now();
    match Self::validity(start, end, ttl, Some(fence)) {
      Some(v) => Some(v),
      None => {
        // Passed on too late to be of use: free it for everyone.
        self.release(key, to, end + ttl).await;
        None
      }
    }
  }

  fn watch(&self, key: &Key) -> Option<KeyWatch> {
    Some(self.listener.watch(key))
  }

  fn set_reporter(&self, r: crate::remote::Reporter) {
    self.pool.health.set_reporter(r);
  }
}

impl PgStore {
  /// Deletes `key` where it holds `token`, tried every `pause` (first after `first`)
  /// until it is done or `until`, when the row expires anyway. `destroy()` waits for it.
  fn release_in_background(&self, key: &Key, token: &str, until: Instant, first: Duration) {
    let (pool, sql, key, token) = (
      self.pool.clone(),
      self.sql.clone(),
      key.clone(),
      token.to_string(),
    );
    let background = self.background.clone();
    background.fetch_add(1, Ordering::AcqRel);
    runtime::runtime().spawn(async move {
      let mut pause = first;
      while Instant::now() < until {
        tokio::time::sleep(pause).await;
        pause = RELEASE_RETRY;
        let k: &[u8] = &key;
        if pool.query(&sql.release, &[&k, &token]).await.is_ok() {
          break;
        }
      }
      background.fetch_sub(1, Ordering::AcqRel);
    });
  }

  fn slow(&self, ttl: Duration) -> Cause {
    Cause {
      node: self.pool.label().to_string(),
      kind: crate::core::CauseKind::Timeout,
      message: format!(
        "the answer came too late for a ttl of {} ms",
        ttl.as_millis()
      ),
    }
  }
}
