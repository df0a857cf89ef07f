//! One Redis node as the CLI uses it: a multiplexed connection opened on first use and
//! again after a loss, every call bounded; the lock keys matching a pattern (SCAN, oxlock's
//! side keys left out) with what each holds; a keyspace subscription counting changes.

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use std::sync::Arc;
use std::time::Duration;

use super::{Changes, NodeView};
use crate::core::Cause;
use crate::redis::scripts::{fence_key, waiting_key};
use crate::redis::{describe, Source};

/// SCAN's COUNT hint: keys the server looks at per call.
const SCAN_COUNT: usize = 1000;

pub(super) struct AdminNode {
  pub label: String,
  pub source: Source,
  pub config: AsyncConnectionConfig,
  /// Bound on one whole call (connect included).
  pub bound: Duration,
  pub conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

/// Counts keyspace events of `pattern` on one node until aborted; reconnects after a loss.
pub(super) async fn subscribe(node: Arc<AdminNode>, pattern: String, changes: Arc<Changes>) {
  let db = node.source.db();
  let channel = format!("__keyspace@{db}__:{pattern}");
  loop {
    let sub = tokio::time::timeout(node.bound, async {
      let mut p = node.source.client().await?.get_async_pubsub().await?;
      p.psubscribe(&channel).await?;
      Ok::<_, redis::RedisError>(p)
    })
    .await;
    if let Ok(Ok(p)) = sub {
      // A change may have come while we were not listening.
      changes.bump();
      let mut messages = p.into_on_message();
      while messages.next().await.is_some() {
        changes.bump();
      }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
  }
}

impl AdminNode {
  fn cause(&self, e: &redis::RedisError) -> Cause {
    let (kind, message) = describe(e);
    Cause {
      node: self.label.clone(),
      kind,
      message,
    }
  }

  pub(super) async fn bounded<T>(
    &self,
    f: impl std::future::Future<Output = Result<T, Cause>>,
  ) -> Result<T, Cause> {
    match tokio::time::timeout(self.bound, f).await {
      Ok(r) => r,
      Err(_) => {
        *self.conn.lock().await = None;
        Err(Cause {
          node: self.label.clone(),
          kind: crate::core::CauseKind::Timeout,
          message: "timed out".into(),
        })
      }
    }
  }

  /// One command or pipeline on the node's connection (opened, or opened again after a failure).
  pub(super) async fn query<T: redis::FromRedisValue>(
    &self,
    q: &(impl QueryAsync + ?Sized),
  ) -> Result<T, Cause> {
    let mut slot = self.conn.lock().await;
    let mut conn = match slot.as_ref() {
      Some(c) => c.clone(),
      None => {
        let client = self.source.client().await.map_err(|e| self.cause(&e))?;
        let c = client
          .get_multiplexed_async_connection_with_config(&self.config)
          .await
          .map_err(|e| self.cause(&e))?;
        *slot = Some(c.clone());
        c
      }
    };
    drop(slot);
    match q.run(&mut conn).await {
      Ok(v) => redis::from_redis_value(v).map_err(|e| self.cause(&e.into())),
      Err(e) => {
        if e.is_connection_dropped() || e.is_io_error() || e.is_timeout() {
          *self.conn.lock().await = None;
        }
        Err(self.cause(&e))
      }
    }
  }

  /// The lock keys matching `pattern` (SCAN) with what each holds here.
  pub(super) async fn locks(
    &self,
    pattern: &str,
    limit: usize,
  ) -> Result<Vec<(Vec<u8>, NodeView)>, Cause> {
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
      let cmd = redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT)
        .clone();
      let (next, keys): (u64, Vec<Vec<u8>>) = self.query(&cmd).await?;
      let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| !is_side_key(k)).collect();
      if !keys.is_empty() {
        out.extend(
          self
            .views(keys)
            .await?
            .into_iter()
            .filter(|(_, v)| v.token.is_some() && v.ttl_ms.is_some()),
        );
      }
      cursor = next;
      if cursor == 0 || out.len() >= limit {
        return Ok(out);
      }
    }
  }

  /// Per key: the token (a string value; other types are no lock), PTTL, fence, waiting mark.
  pub(super) async fn views(&self, keys: Vec<Vec<u8>>) -> Result<Vec<(Vec<u8>, NodeView)>, Cause> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for k in &keys {
      pipe.get(k).pttl(k).get(fence_key(k)).pttl(waiting_key(k));
    }
    let replies: Vec<Value> = self.query(&pipe).await?;
    Ok(
      keys
        .into_iter()
        .zip(replies.chunks(4))
        .map(|(k, r)| {
          let token = match &r[0] {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
          };
          let int = |v: &Value| match v {
            Value::Int(i) if *i >= 0 => Some(*i),
            _ => None,
          };
          let fence = match &r[2] {
            Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
            _ => None,
          };
          let view = NodeView {
            token: token.filter(|_| int(&r[1]).is_some()),
            ttl_ms: int(&r[1]),
            fence,
            waiting_ms: int(&r[3]),
            ..NodeView::default()
          };
          (k, view)
        })
        .collect(),
    )
  }
}

/// A command or a pipeline, sent the same way.
pub(super) trait QueryAsync: Sync {
  fn run<'a>(&'a self, c: &'a mut MultiplexedConnection) -> redis::RedisFuture<'a, Value>;
}

impl QueryAsync for redis::Cmd {
  fn run<'a>(&'a self, c: &'a mut MultiplexedConnection) -> redis::RedisFuture<'a, Value> {
    Box::pin(self.query_async(c))
  }
}

impl QueryAsync for redis::Pipeline {
  fn run<'a>(&'a self, c: &'a mut MultiplexedConnection) -> redis::RedisFuture<'a, Value> {
    Box::pin(self.query_async(c))
  }
}

/// Whether `k` is the fence counter or waiting mark of some key (then it is not listed).
fn is_side_key(k: &[u8]) -> bool {
  [&b":fence"[..], b":waiting"].iter().any(|suffix| {
    let Some(stem) = k.strip_suffix(*suffix) else {
      return false;
    };
    let side = |base: &[u8]| {
      if suffix == b":fence" {
        fence_key(base) == k
      } else {
        waiting_key(base) == k
      }
    };
    side(stem)
      || stem
        .strip_prefix(b"{")
        .and_then(|s| s.strip_suffix(b"}"))
        .is_some_and(side)
  })
}

#[cfg(test)]
mod tests {
  use super::is_side_key;
  use crate::redis::scripts::{fence_key, waiting_key};

  #[test]
  fn side_keys_are_recognised_and_lock_keys_are_not() {
    for k in [
      &b"invoice:42"[..],
      b"{user:1}:lock",
      b"a{}b",
      b"a}b",
      b"job:fence",
    ] {
      assert!(is_side_key(&fence_key(k)), "{:?}", fence_key(k));
      assert!(is_side_key(&waiting_key(k)));
    }
    for k in [
      &b"invoice:42"[..],
      b"{user:1}:lock",
      b"fence",
      b"x:waiting:1",
    ] {
      assert!(!is_side_key(k));
    }
  }
}
