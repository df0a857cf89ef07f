//! The CLI's view of Redis nodes: SCAN for keys, one pipeline per node for what each key
//! holds (token, PTTL, the fence counter and the "someone waits" mark next to it), and a
//! keyspace-notification subscription per node that counts changes.
//!
//! A lock is a string key with an expiry; oxlock's side keys (`scripts::fence_key`,
//! `scripts::waiting_key`) are not listed. Every node is asked concurrently; a node that
//! fails is reported beside the answers of the others.

use futures_util::future::join_all;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

use super::{all_failed, Changes, LockView, NodeView, Partial};
use crate::config::RedisConfig;
use crate::core::{runtime, Cause, Error};
use crate::redis::scripts::{fence_key, waiting_key};
use crate::redis::{client, describe, freed_channel};

/// What the nodes hold at one key: token → (nodes holding it, soonest expiry, largest
/// fence), and whether any has its "someone waits" mark.
type Seen = (BTreeMap<String, (usize, i64, Option<u64>)>, bool);

/// SCAN's COUNT hint: keys the server looks at per call.
const SCAN_COUNT: usize = 1000;

pub struct RedisAdmin {
  nodes: Vec<Arc<AdminNode>>,
  changes: Arc<Changes>,
  /// One keyspace subscription per node, started by the first `notifies`.
  watchers: Mutex<Vec<JoinHandle<()>>>,
}

struct AdminNode {
  label: String,
  client: redis::Client,
  config: AsyncConnectionConfig,
  /// Bound on one whole call (connect included).
  bound: Duration,
  conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl RedisAdmin {
  pub fn new(cfg: &RedisConfig) -> Result<RedisAdmin, Error> {
    let timeout = Duration::from_millis(cfg.node_timeout_ms as u64);
    let connect = Duration::from_millis(cfg.connect_timeout_ms as u64);
    let nodes = cfg
      .nodes
      .iter()
      .map(|n| {
        Ok(Arc::new(AdminNode {
          label: n.label.clone(),
          client: client(n)?,
          config: AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(timeout)),
          // A SCAN of a big keyspace is many round trips: each is bounded, the whole by 10×.
          bound: connect + timeout * 10,
          conn: tokio::sync::Mutex::new(None),
        }))
      })
      .collect::<Result<Vec<_>, Error>>()?;
    Ok(RedisAdmin {
      nodes,
      changes: Arc::default(),
      watchers: Mutex::new(Vec::new()),
    })
  }

  /// Runs `f` on every node at once; the answers, and the causes of those that failed.
  async fn each<T, F>(&self, f: impl Fn(Arc<AdminNode>) -> F) -> (Vec<(usize, T)>, Vec<Cause>)
  where
    F: std::future::Future<Output = Result<T, Cause>>,
  {
    let results = join_all(self.nodes.iter().map(|n| f(n.clone()))).await;
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
      match r {
        Ok(v) => ok.push((i, v)),
        Err(c) => failures.push(c),
      }
    }
    (ok, failures)
  }

  pub async fn list(&self, pattern: &str, limit: usize) -> Result<Partial<Vec<LockView>>, Error> {
    let (answers, failures) = self
      .each(|n| {
        let pattern = pattern.to_string();
        async move { n.bounded(n.locks(&pattern, limit)).await }
      })
      .await;
    if answers.is_empty() {
      return Err(all_failed(failures));
    }
    let mut keys: BTreeMap<Vec<u8>, Seen> = BTreeMap::new();
    for (_, views) in answers {
      for (key, v) in views {
        let (Some(token), Some(ttl)) = (v.token, v.ttl_ms) else {
          continue;
        };
        let entry = keys.entry(key).or_default();
        let t = entry.0.entry(token).or_insert((0, i64::MAX, None));
        t.0 += 1;
        t.1 = t.1.min(ttl);
        t.2 = t.2.max(v.fence);
        entry.1 |= v.waiting_ms.is_some_and(|w| w > 0);
      }
    }
    let nodes = self.nodes.len();
    let locks = keys
      .into_iter()
      .filter_map(|(key, (tokens, waited_for))| {
        let (token, (held_on, ttl_ms, fence)) = tokens.into_iter().max_by_key(|(_, t)| t.0)?;
        Some(LockView {
          key,
          token,
          ttl_ms,
          fence,
          held_on,
          nodes,
          waited_for,
        })
      })
      .take(limit)
      .collect();
    Ok(Partial {
      value: locks,
      failures,
    })
  }

  pub async fn inspect(&self, key: &[u8]) -> Result<Vec<NodeView>, Error> {
    let (answers, failures) = self
      .each(|n| {
        let key = key.to_vec();
        async move { n.bounded(n.views(vec![key])).await }
      })
      .await;
    let mut out: Vec<NodeView> = answers
      .into_iter()
      .map(|(i, mut v)| {
        let (_, view) = v.pop().unwrap_or_default();
        NodeView {
          node: self.nodes[i].label.clone(),
          ..view
        }
      })
      .collect();
    out.extend(failures.into_iter().map(|c| NodeView {
      node: c.node.clone(),
      error: Some(c),
      ..NodeView::default()
    }));
    Ok(out)
  }

  pub async fn force_unlock(&self, key: &[u8]) -> Result<Partial<usize>, Error> {
    let (answers, failures) = self
      .each(|n| {
        let key = key.to_vec();
        async move {
          let mut pipe = redis::pipe();
          pipe.del(&key).publish(freed_channel(&key), "");
          let (deleted, _): (i64, i64) = n.bounded(n.query(&pipe)).await?;
          Ok(deleted)
        }
      })
      .await;
    if answers.is_empty() {
      return Err(all_failed(failures));
    }
    Ok(Partial {
      value: answers.iter().filter(|(_, d)| *d > 0).count(),
      failures,
    })
  }

  /// Subscribes (once) to every node's keyspace events of `pattern`; whether the first node
  /// that answers sends them (`notify-keyspace-events` has `K` and generic and expiry
  /// events). A server that does not let us read its config is polled.
  pub async fn notifies(&self, pattern: &str) -> bool {
    {
      let mut w = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
      if w.is_empty() {
        for n in &self.nodes {
          w.push(runtime::runtime().spawn(subscribe(
            n.clone(),
            pattern.to_string(),
            self.changes.clone(),
          )));
        }
      }
    }
    for n in &self.nodes {
      let cmd = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .clone();
      if let Ok((_, flags)) = n.bounded(n.query::<(String, String)>(&cmd)).await {
        let generic = flags.contains('A') || (flags.contains('g') && flags.contains('x'));
        return flags.contains('K') && generic;
      }
    }
    false
  }

  pub(super) fn changes(&self) -> &Changes {
    &self.changes
  }

  pub fn close(&self) {
    for w in self
      .watchers
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .drain(..)
    {
      w.abort();
    }
  }
}

impl Drop for RedisAdmin {
  fn drop(&mut self) {
    self.close();
  }
}

/// Counts keyspace events of `pattern` on one node until aborted; reconnects after a loss.
async fn subscribe(node: Arc<AdminNode>, pattern: String, changes: Arc<Changes>) {
  let db = node.client.get_connection_info().redis_settings().db();
  let channel = format!("__keyspace@{db}__:{pattern}");
  loop {
    let sub = tokio::time::timeout(node.bound, async {
      let mut p = node.client.get_async_pubsub().await?;
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

  async fn bounded<T>(
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
  async fn query<T: redis::FromRedisValue>(
    &self,
    q: &(impl QueryAsync + ?Sized),
  ) -> Result<T, Cause> {
    let mut slot = self.conn.lock().await;
    let mut conn = match slot.as_ref() {
      Some(c) => c.clone(),
      None => {
        let c = self
          .client
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
  async fn locks(&self, pattern: &str, limit: usize) -> Result<Vec<(Vec<u8>, NodeView)>, Cause> {
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
  async fn views(&self, keys: Vec<Vec<u8>>) -> Result<Vec<(Vec<u8>, NodeView)>, Cause> {
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
trait QueryAsync: Sync {
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
