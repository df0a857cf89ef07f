//! The CLI's view of a PostgreSQL lock table: the rows not yet expired (on the database's
//! clock), and a forced delete that wakes the key's waiters as an unlock does. The table
//! keeps no fence per row (fences come from one sequence), so none is shown; the server
//! sends no notice of acquisitions, so a watcher polls.

use super::{all_failed, Changes, LockView, NodeView, Partial};
use crate::config::PostgresConfig;
use crate::core::{Cause, Error};
use crate::postgres::{sql::Statements, Pool};

pub struct PgAdmin {
  pool: Pool,
  sql: Statements,
  list: String,
  inspect: String,
  delete: String,
  changes: Changes,
}

impl PgAdmin {
  pub fn new(cfg: &PostgresConfig) -> Result<PgAdmin, Error> {
    let t = format!("\"{}\"", cfg.table);
    let left = "(1000 * extract(epoch FROM expires_at - clock_timestamp()))::int8";
    let waiting = "(1000 * extract(epoch FROM waiting_until - clock_timestamp()))::int8";
    Ok(PgAdmin {
      pool: crate::postgres::pool(cfg)?,
      sql: Statements::new(&cfg.table),
      list: format!(
        "SELECT key, token, {left}, {waiting} FROM {t}
          WHERE key LIKE $1 AND expires_at > clock_timestamp() ORDER BY key LIMIT $2"
      ),
      inspect: format!(
        "SELECT token, {left}, {waiting} FROM {t} WHERE key = $1 AND expires_at > clock_timestamp()"
      ),
      delete: format!(
        "WITH gone AS (DELETE FROM {t} WHERE key = $1 AND ($2::text IS NULL OR token = $2) RETURNING key)
         SELECT pg_notify('{}', md5(key)) FROM gone",
        cfg.table
      ),
      changes: Changes::default(),
    })
  }

  /// Whether the lock table exists (no table: nothing was ever locked).
  async fn table(&self) -> Result<bool, Cause> {
    let rows = self
      .pool
      .query(&self.sql.lookup, &[])
      .await
      .map_err(|f| f.cause())?;
    Ok(rows[0].get(0))
  }

  pub async fn list(&self, pattern: &str, limit: usize) -> Result<Partial<Vec<LockView>>, Error> {
    let run = async {
      if !self.table().await? {
        return Ok(Vec::new());
      }
      let like = super::glob_to_like(pattern).into_bytes();
      let limit = i64::try_from(limit).unwrap_or(i64::MAX);
      let rows = self
        .pool
        .query(&self.list, &[&like, &limit])
        .await
        .map_err(|f| f.cause())?;
      Ok(
        rows
          .iter()
          .map(|r| LockView {
            key: r.get(0),
            token: r.get(1),
            ttl_ms: r.get::<_, i64>(2).max(0),
            fence: None,
            held_on: 1,
            nodes: 1,
            waited_for: r.get::<_, Option<i64>>(3).is_some_and(|w| w > 0),
          })
          .collect(),
      )
    };
    match run.await {
      Ok(value) => Ok(Partial {
        value,
        failures: Vec::new(),
      }),
      Err(c) => Err(all_failed(vec![c])),
    }
  }

  pub async fn inspect(&self, key: &[u8]) -> Result<Vec<NodeView>, Error> {
    let run = async {
      if !self.table().await? {
        return Ok(None);
      }
      let rows = self
        .pool
        .query(&self.inspect, &[&key])
        .await
        .map_err(|f| f.cause())?;
      Ok(rows.first().map(|r| {
        (
          r.get::<_, String>(0),
          r.get::<_, i64>(1),
          r.get::<_, Option<i64>>(2),
        )
      }))
    };
    let node = self.pool.label().to_string();
    let answer = match run.await {
      Ok(a) => a,
      Err(c) => return Err(all_failed(vec![c])),
    };
    Ok(vec![match answer {
      Some((token, ttl, waiting)) => NodeView {
        node,
        token: Some(token),
        ttl_ms: Some(ttl.max(0)),
        waiting_ms: waiting.filter(|w| *w > 0),
        ..NodeView::default()
      },
      None => NodeView {
        node,
        ..NodeView::default()
      },
    }])
  }

  pub async fn force_unlock(
    &self,
    key: &[u8],
    token: Option<&str>,
  ) -> Result<Partial<usize>, Error> {
    let run = async {
      if !self.table().await? {
        return Ok(0);
      }
      let rows = self
        .pool
        .query(&self.delete, &[&key, &token])
        .await
        .map_err(|f| f.cause())?;
      Ok(rows.len())
    };
    match run.await {
      Ok(value) => Ok(Partial {
        value,
        failures: Vec::new(),
      }),
      Err(c) => Err(all_failed(vec![c])),
    }
  }

  pub async fn notifies(&self) -> bool {
    false
  }

  pub(super) fn changes(&self) -> &Changes {
    &self.changes
  }

  pub fn close(&self) {
    self.pool.close();
  }
}
