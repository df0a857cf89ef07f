//! The PostgreSQL store: locks as rows of one table, decided by the database's clock, with
//! fencing numbers from a sequence and waiters woken by LISTEN/NOTIFY. Also the pool the
//! distributed-locks face (`compat::distributed_locks::postgres`) runs on.

mod listener;
mod pool;
pub mod sql;
mod store;
mod tls;

pub use pool::{Failure, Pool};
pub use store::PgStore;

use std::time::Duration;

use crate::config::PostgresConfig;
use crate::core::Error;

/// The store of `cfg`; connections open on first use.
pub fn connect(cfg: &PostgresConfig) -> Result<PgStore, Error> {
  PgStore::new(pool(cfg)?, &cfg.table)
}

pub fn pool(cfg: &PostgresConfig) -> Result<Pool, Error> {
  Pool::new(
    &cfg.db,
    cfg.pool_size,
    Duration::from_millis(cfg.connect_timeout_ms as u64),
    Duration::from_millis(cfg.query_timeout_ms as u64),
  )
}

/// How long `destroy()` lets running requests clean up: a connect and a statement each,
/// twice, plus a retry pause.
pub fn destroy_bound(cfg: &PostgresConfig) -> Duration {
  Duration::from_millis(((cfg.connect_timeout_ms + cfg.query_timeout_ms) * 2.0) as u64)
    + Duration::from_secs(1)
}
