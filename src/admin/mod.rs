//! What the `oxlock` CLI sees and does on a store, apart from locking: the locks held now
//! (`list`), one key in detail on every node (`inspect`), a forced delete (`force_unlock`),
//! and a wait for the next change (`changed`, keyspace notifications where the server
//! sends them). Each call opens what it needs lazily and is bounded by the store's timeouts.

mod group;
mod postgres;
mod redis;
mod redis_node;

use std::time::Duration;

use crate::config::{Backend, Config};
use crate::core::{Cause, Error, ErrorKind};

/// One held lock as the store shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LockView {
  pub key: Vec<u8>,
  /// The holder's token (on Redlock: the one held on most nodes).
  pub token: String,
  /// Milliseconds until it expires (on Redlock: the soonest of the nodes holding it).
  pub ttl_ms: i64,
  /// The fence of its holder, where the store keeps one per key.
  pub fence: Option<u64>,
  /// Nodes holding `token`, of `nodes`.
  pub held_on: usize,
  pub nodes: usize,
  /// Someone failed to take it lately (the store's "someone waits" mark).
  pub waited_for: bool,
}

/// One node's view of one key (`inspect`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeView {
  pub node: String,
  pub token: Option<String>,
  pub ttl_ms: Option<i64>,
  pub fence: Option<u64>,
  pub waiting_ms: Option<i64>,
  /// Why this node could not be read.
  pub error: Option<Cause>,
}

/// A result from the nodes that answered, and why the others did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial<T> {
  pub value: T,
  pub failures: Vec<Cause>,
}

pub enum Admin {
  Redis(redis::RedisAdmin),
  Postgres(Box<postgres::PgAdmin>),
}

impl Admin {
  /// For a `create()` config of a remote store; the in-memory store has nothing to show
  /// from another process.
  pub fn open(cfg: &Config) -> Result<Admin, Error> {
    match &cfg.backend {
      Backend::Redis(r) => Ok(Admin::Redis(redis::RedisAdmin::new(r)?)),
      Backend::Postgres(p) => Ok(Admin::Postgres(Box::new(postgres::PgAdmin::new(p)?))),
      Backend::InMemory(_) => Err(Error::new(
        ErrorKind::Config,
        "type: an in-memory lock lives inside its process; give a 'redis' or 'postgres' connection",
      )),
    }
  }

  /// Held locks whose key matches `pattern` (`*` and `?` wildcards), at most `limit`, by key.
  pub async fn list(&self, pattern: &str, limit: usize) -> Result<Partial<Vec<LockView>>, Error> {
    match self {
      Admin::Redis(r) => r.list(pattern, limit).await,
      Admin::Postgres(p) => p.list(pattern, limit).await,
    }
  }

  pub async fn inspect(&self, key: &[u8]) -> Result<Vec<NodeView>, Error> {
    match self {
      Admin::Redis(r) => r.inspect(key).await,
      Admin::Postgres(p) => p.inspect(key).await,
    }
  }

  /// Deletes `key` and wakes its waiters: whoever holds it, or only where it still holds
  /// `token` (the holder an operator confirmed); how many nodes it was deleted on.
  pub async fn force_unlock(
    &self,
    key: &[u8],
    token: Option<&str>,
  ) -> Result<Partial<usize>, Error> {
    match self {
      Admin::Redis(r) => r.force_unlock(key, token).await,
      Admin::Postgres(p) => p.force_unlock(key, token).await,
    }
  }

  /// Whether the store tells us of changes (else a watcher polls).
  pub async fn notifies(&self, pattern: &str) -> bool {
    match self {
      Admin::Redis(r) => r.notifies(pattern).await,
      Admin::Postgres(p) => p.notifies().await,
    }
  }

  /// Waits at most `within` for a change after the `seen`th; returns the changes seen so far.
  pub async fn changed(&self, seen: u64, within: Duration) -> u64 {
    let changes = match self {
      Admin::Redis(r) => r.changes(),
      Admin::Postgres(p) => p.changes(),
    };
    changes.wait_past(seen, within).await
  }

  pub fn close(&self) {
    match self {
      Admin::Redis(r) => r.close(),
      Admin::Postgres(p) => p.close(),
    }
  }
}

/// A count of changes the store told us of, and a wake-up for those waiting on it.
#[derive(Default)]
pub(crate) struct Changes {
  count: std::sync::atomic::AtomicU64,
  notify: tokio::sync::Notify,
}

impl Changes {
  pub fn bump(&self) {
    self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    self.notify.notify_waiters();
  }

  async fn wait_past(&self, seen: u64, within: Duration) -> u64 {
    let notified = self.notify.notified();
    let now = self.count.load(std::sync::atomic::Ordering::Acquire);
    if now > seen {
      return now;
    }
    let _ = tokio::time::timeout(within, notified).await;
    self.count.load(std::sync::atomic::Ordering::Acquire)
  }
}

/// Every node failed: the error of the call, naming each.
fn all_failed(causes: Vec<Cause>) -> Error {
  let mut e = Error::failed(1, causes);
  let list: Vec<String> = e.causes.iter().map(ToString::to_string).collect();
  let what = match e.kind {
    ErrorKind::Auth => "access was refused (credentials or ACL permissions)",
    _ => "the store could not be reached",
  };
  e.message = format!("{what}: {}", list.join("; "));
  e
}

/// `*` and `?` of a glob as a SQL `LIKE` pattern (`\` escapes `%` and `_`).
fn glob_to_like(glob: &str) -> String {
  let mut out = String::with_capacity(glob.len());
  for c in glob.chars() {
    match c {
      '*' => out.push('%'),
      '?' => out.push('_'),
      '%' | '_' | '\\' => {
        out.push('\\');
        out.push(c);
      }
      c => out.push(c),
    }
  }
  out
}

#[cfg(test)]
mod tests {
  #[test]
  fn globs_become_like_patterns() {
    assert_eq!(super::glob_to_like("job:*"), "job:%");
    assert_eq!(super::glob_to_like("a?_%\\"), "a_\\_\\%\\\\");
  }
}
