//! Options of `type: 'inMemory'`.

use std::time::Duration;

use super::value::{config_err, type_err, Value};
use super::{lock_options, retry_and_delay, Source, MAX_MS};
use crate::core::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
  /// Locks belong to one manager (@leverege/lock's "locks on the instance").
  Instance,
  /// One table shared by every manager in the process, worker threads included.
  Process,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InMemoryConfig {
  /// Attempts after the first; negative means wait without limit.
  pub retry: i64,
  /// Milliseconds between attempts; with `retry` it sets the wait budget.
  pub delay_ms: f64,
  pub scope: Scope,
}

impl InMemoryConfig {
  /// How long a contended `lock()` may wait: `retry × delay`, `None` = no limit.
  pub fn wait(&self) -> Option<Duration> {
    (self.retry >= 0)
      .then(|| Duration::from_secs_f64((self.retry as f64 * self.delay_ms).min(MAX_MS) / 1000.0))
  }
}

/// node-redlock's fields, accepted so one `lockOptions` serves every type; only
/// `retryCount` and `retryDelay` mean something in memory (Redis's `fencing` is accepted
/// too, and checked: fences cost nothing here, handles keep theirs).
pub(super) const LOCK_OPTION_FIELDS: &[&str] = &[
  "retryCount",
  "retryDelay",
  "retryJitter",
  "driftFactor",
  "nodeTimeout",
  "connectTimeout",
];

pub(super) fn parse(src: &Source) -> Result<InMemoryConfig, Error> {
  src.refuse("connection", "inMemory")?;
  let lo = lock_options(src)?;
  lo.only(LOCK_OPTION_FIELDS, super::redis::REDIS_LOCK_OPTION_FIELDS)?;
  let (retry, delay_ms) = retry_and_delay(src, lo)?;
  // Checked so one `lockOptions` serves every type, though they mean nothing in memory.
  super::redis::timing(lo)?;
  lo.boolean("fencing", true)?;
  let scope = match src.get("scope") {
    None => Scope::Instance,
    Some((Value::String(s), path)) => match s.as_str() {
      "instance" => Scope::Instance,
      "process" => Scope::Process,
      other => {
        return Err(config_err(format!(
          "{path}: unknown scope '{other}'; expected 'instance' or 'process'"
        )))
      }
    },
    Some((v, path)) => return Err(type_err(&path, "'instance' or 'process'", v)),
  };
  Ok(InMemoryConfig {
    retry,
    delay_ms,
    scope,
  })
}
