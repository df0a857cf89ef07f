//! The CLI's view of a Redis store: every node asked at once (`redis_node.rs` does one
//! node's SCAN, its pipeline of token, PTTL, fence counter and "someone waits" mark per key,
//! and its keyspace subscription), the answers merged per key.
//!
//! A lock is a string key with an expiry; oxlock's side keys (`scripts::fence_key`,
//! `scripts::waiting_key`) are not listed. Every node is asked concurrently; a node that
//! fails is reported beside the answers of the others.

use futures_util::future::join_all;
use redis::AsyncConnectionConfig;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

use super::redis_node::{subscribe, AdminNode};
use super::{all_failed, Changes, LockView, NodeView, Partial};
use crate::config::RedisConfig;
use crate::core::{runtime, Cause, Error};
use crate::redis::{freed_channel, Source};

/// What the nodes hold at one key: token → (nodes holding it, soonest expiry, largest
/// fence), and whether any has its "someone waits" mark.
type Seen = (BTreeMap<String, (usize, i64, Option<u64>)>, bool);

pub struct RedisAdmin {
  nodes: Vec<Arc<AdminNode>>,
  changes: Arc<Changes>,
  /// One keyspace subscription per node, started by the first `notifies`.
  watchers: Mutex<Vec<JoinHandle<()>>>,
}

impl RedisAdmin {
  pub fn new(cfg: &RedisConfig) -> Result<RedisAdmin, Error> {
    let timeout = Duration::from_millis(cfg.node_timeout_ms as u64);
    let connect = Duration::from_millis(cfg.connect_timeout_ms as u64);
    if let Some(n) = cfg.nodes.iter().find(|n| n.cluster.is_some()) {
      return Err(Error::new(
        crate::core::ErrorKind::Unsupported,
        format!(
          "{}: the CLI does not look into a Redis Cluster yet",
          n.label
        ),
      ));
    }
    let nodes = cfg
      .nodes
      .iter()
      .map(|n| {
        Ok(Arc::new(AdminNode {
          label: n.label.clone(),
          source: Source::of(n, timeout, connect)?,
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
