//! distributed-locks-postgresql's PostgresqlStorage: rows `(key varchar(50), value
//! varchar(100), ttl integer seconds, obtained_at timestamp)` in `<tableName>`, keys
//! `<prefix>:<key>`. Upstream's bugs fixed, compatibly with its processes on one table:
//! the configured table name everywhere, a takeover refreshes `obtained_at`, one
//! statement in READ COMMITTED (no serialization failures), fractional ttls.
//!
//! `obtained_at` has no time zone: it is written and compared in the session's zone,
//! which we leave at the server's default, as upstream's driver does, so both read the
//! same rows the same way.

use std::sync::Arc;

use crate::compat::{values, Client, Link};
use crate::core::{Error, Outcome};
use crate::postgres::sql::SCHEMA_LOCK;
use crate::postgres::Pool;

pub struct Storage {
  pub pool: Pool,
  init: String,
  set: String,
  unset: String,
}

impl Storage {
  /// `table` is checked by the config (letters, digits, `_`).
  pub fn new(pool: Pool, table: &str) -> Storage {
    let t = format!("\"{table}\"");
    let pkey = format!("\"{table}_pkey\"");
    Storage {
      pool,
      init: format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
         CREATE TABLE IF NOT EXISTS {t} (
           key varchar(50),
           value varchar(100) NOT NULL,
           ttl integer NOT NULL,
           obtained_at timestamp DEFAULT current_timestamp,
           CONSTRAINT {pkey} PRIMARY KEY (key));
         COMMIT;"
      ),
      // A fractional ttl: `ttl` holds it rounded up (the column is whole seconds) and
      // `obtained_at` is moved back by the difference, so `obtained_at + ttl` (what every
      // reader computes) is exactly now + the ttl asked for.
      set: format!(
        "INSERT INTO {t} AS l (key, value, ttl, obtained_at)
         VALUES ($1, $2, $3::int4, current_timestamp - ($3::int4 - $4::float8) * interval '1 second')
         ON CONFLICT (key) DO UPDATE
           SET value = EXCLUDED.value, ttl = EXCLUDED.ttl, obtained_at = EXCLUDED.obtained_at
           WHERE l.obtained_at + l.ttl * interval '1 second' < current_timestamp
         RETURNING 1"
      ),
      unset: format!("DELETE FROM {t} WHERE key = $1 AND value = $2 RETURNING 1"),
    }
  }
}

fn storage(c: &Client) -> Result<&Storage, Error> {
  match &c.link {
    Link::Postgres(s) => Ok(s),
    _ => Err(Error::internal(
      "a PostgreSQL command on a face that is not on PostgreSQL",
    )),
  }
}

/// A statement whose answer is unknown may have taken the key under the lock's value. It
/// is not deleted behind the caller's back: a Lock keeps one value for every lock() call,
/// so a late delete could free that Lock's next, valid acquisition. The ttl bounds it.
fn unavailable(failure: crate::postgres::Failure) -> Error {
  Error::unavailable(1, vec![failure.cause()])
}

/// Creates the table if it is absent.
pub async fn init(c: Arc<Client>) -> Outcome {
  let r = async {
    let s = storage(&c)?;
    s.pool
      .batch(&s.init)
      .await
      .map_err(|c| Error::unavailable(1, vec![c]))?;
    Ok((vec![1], Vec::new()))
  };
  values(r.await)
}

/// Takes `key` for `ttl_s` seconds if it is free or its holder's ttl ran out. `ints[0]`: 1 if taken.
pub async fn set(c: Arc<Client>, key: String, value: String, ttl_s: f64) -> Outcome {
  let r = async {
    let s = storage(&c)?;
    let whole = ttl_s.ceil() as i32;
    let rows = s
      .pool
      .query(&s.set, &[&key, &value, &whole, &ttl_s])
      .await
      .map_err(unavailable)?;
    Ok((vec![rows.len() as i64], Vec::new()))
  };
  values(r.await)
}

/// Deletes `key` if it holds `value`. `ints[0]`: 1 if deleted.
pub async fn unset(c: Arc<Client>, key: String, value: String) -> Outcome {
  let r = async {
    let s = storage(&c)?;
    let rows = s
      .pool
      .query(&s.unset, &[&key, &value])
      .await
      .map_err(unavailable)?;
    Ok((vec![rows.len() as i64], Vec::new()))
  };
  values(r.await)
}
