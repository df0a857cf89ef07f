//! The statements of the lock table, written once per table name. Every decision is one
//! statement on the database's clock (`clock_timestamp()`), so no read-then-write race
//! and no clock of ours is involved in what expired; READ COMMITTED with `ON CONFLICT`
//! never raises a serialization failure.

/// `pg_advisory_xact_lock` key serialising schema set-up across processes: concurrent
/// `CREATE ... IF NOT EXISTS` can otherwise fail on the catalog's unique index.
pub const SCHEMA_LOCK: i64 = 0x6f78_6c6f_636b; // "oxlock"
/// How long a failed attempt's "someone waits" mark lasts, in seconds.
const WAITING_S: u32 = 2;

pub struct Statements {
  /// → (the table exists, the sequence's CACHE or NULL if it does not exist, the table
  /// has `waiting_until`: a table made by an earlier oxlock lacks it).
  pub lookup: String,
  pub schema: String,
  /// The sequence's name, for messages.
  pub sequence: String,
  /// ($1 key, $2 token, $3 ttl ms) → one row: (fence, NULL) if taken, (NULL, ms the
  /// holder has left) if held, or no row if held by a holder we cannot see yet. Held, it
  /// marks the row as waited for (`waiting_until`, written at most once a second), which
  /// makes the holder's process give the key back after `FAIR_HANDOFFS` local handoffs.
  pub acquire: String,
  /// ($1 key, $2 token, $3 ttl ms) → a row if extended.
  pub extend: String,
  /// ($1 key, $2 token) → a row if deleted; NOTIFY `<table>` with md5(key) then.
  pub release: String,
  /// ($1 key) → (held now?) or no row.
  pub inspect: String,
  /// ($1 key, $2 from, $3 to, $4 ttl ms, $5 handoffs so far) → (fence) if passed on.
  pub transfer: String,
  /// The NOTIFY channel: the table's name.
  pub channel: String,
}

impl Statements {
  /// `table` is checked by the config (letters, digits, `_`), quoted as an identifier.
  pub fn new(table: &str) -> Statements {
    let t = format!("\"{table}\"");
    let fence = format!("\"{table}_fence\"");
    let until = "clock_timestamp() + $3::float8 * interval '1 millisecond'";
    Statements {
      lookup: format!(
        "SELECT to_regclass('{t}') IS NOT NULL,
                (SELECT seqcache FROM pg_sequence WHERE seqrelid = to_regclass('{fence}')),
                EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('{t}')
                          AND attname = 'waiting_until' AND NOT attisdropped)"
      ),
      sequence: fence.clone(),
      schema: format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
         CREATE TABLE IF NOT EXISTS {t} (
           key bytea PRIMARY KEY,
           token text NOT NULL,
           expires_at timestamptz NOT NULL,
           waiting_until timestamptz);
         CREATE SEQUENCE IF NOT EXISTS {fence} CACHE 1;
         ALTER TABLE {t} ADD COLUMN IF NOT EXISTS waiting_until timestamptz;
         COMMIT;"
      ),
      // The fence is drawn in RETURNING, after the row is ours: a holder that took the key
      // earlier drew its number before it wrote, so before we could see its row gone.
      acquire: format!(
        "WITH won AS (
           INSERT INTO {t} AS l (key, token, expires_at) VALUES ($1, $2, {until})
           ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
             WHERE l.expires_at <= clock_timestamp()
           RETURNING nextval('{fence}') AS fence),
         mark AS (
           UPDATE {t} AS l SET waiting_until = clock_timestamp() + interval '{WAITING_S} seconds'
            WHERE l.key = $1 AND NOT EXISTS (SELECT FROM won)
              AND (l.waiting_until IS NULL OR l.waiting_until < clock_timestamp() + interval '1 second'))
         SELECT fence, NULL::float8 AS left_ms FROM won
         UNION ALL
         SELECT NULL, (1000 * extract(epoch FROM l.expires_at - clock_timestamp()))::float8
           FROM {t} AS l WHERE l.key = $1 AND NOT EXISTS (SELECT FROM won)"
      ),
      extend: format!(
        "UPDATE {t} SET expires_at = {until}
          WHERE key = $1 AND token = $2 AND expires_at > clock_timestamp() RETURNING 1"
      ),
      release: format!(
        "WITH gone AS (DELETE FROM {t} WHERE key = $1 AND token = $2 RETURNING key)
         SELECT pg_notify('{table}', md5(key)) FROM gone"
      ),
      inspect: format!("SELECT expires_at > clock_timestamp() FROM {t} WHERE key = $1"),
      transfer: format!(
        "UPDATE {t} SET token = $3, expires_at = clock_timestamp() + $4::float8 * interval '1 millisecond'
          WHERE key = $1 AND token = $2 AND expires_at > clock_timestamp()
            AND ($5::int4 < {fair} OR waiting_until IS NULL OR waiting_until <= clock_timestamp())
          RETURNING nextval('{fence}')",
        fair = crate::remote::FAIR_HANDOFFS
      ),
      channel: table.to_string(),
    }
  }
}

/// The NOTIFY payload for `key`: md5 in hex, as the server's `md5(bytea)` writes it
/// (bounded, whatever the key's length; the payload limit is 8000 bytes).
pub fn key_digest(key: &[u8]) -> String {
  use md5::{Digest, Md5};
  let d = Md5::digest(key);
  d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
  #[test]
  fn digest_matches_postgres_md5() {
    // SELECT md5(''::bytea), md5('oxlock'::bytea)
    assert_eq!(super::key_digest(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
      super::key_digest(b"abc"),
      "900150983cd24fb0d6963f7d28e17f72"
    );
  }
}
