//! The CLI's view of a Redis store: every node asked at once (`redis_node.rs` does one
//! node's SCAN, its pipeline of token, PTTL, fence counter and "someone waits" mark per key,
//! and its keyspace subscription), the answers merged per key.
//!
//! A lock is a string key with an expiry; oxlock's side keys (`scripts::fence_key`,
//! `scripts::waiting_key`) are not listed. Every node is asked concurrently; a node that
//! fails is reported beside the answers of the others.

use futures_util::future::join_all;
use redis::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

use super::group::Group;
use super::redis_node::{subscribe, AdminNode};
use super::{all_failed, Changes, LockView, NodeView, Partial};
use crate::config::RedisConfig;
use crate::core::{runtime, Cause, Error};
use crate::redis::freed_channel;

/// `DEL KEYS[1]` only while it holds ARGV[1] (the token an operator confirmed).
const DELETE_IF_HELD_BY: &str =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

/// What the nodes hold at one key: token → (nodes holding it, soonest expiry, largest
/// fence), and whether any has its "someone waits" mark.
type Seen = (BTreeMap<String, (usize, i64, Option<u64>)>, bool);

pub struct RedisAdmin {
  groups: Vec<Group>,
  changes: Arc<Changes>,
  /// One keyspace subscription per node, started by the first `notifies`.
  watchers: Mutex<Vec<JoinHandle<()>>>,
}

impl RedisAdmin {
  pub fn new(cfg: &RedisConfig) -> Result<RedisAdmin, Error> {
    let timeout = Duration::from_millis(cfg.node_timeout_ms as u64);
    let connect = Duration::from_millis(cfg.connect_timeout_ms as u64);
    let groups = cfg
      .nodes
      .iter()
      .map(|n| Group::new(n, timeout, connect))
      .collect::<Result<Vec<_>, Error>>()?;
    Ok(RedisAdmin {
      groups,
      changes: Arc::default(),
      watchers: Mutex::new(Vec::new()),
    })
  }

  /// Runs `f` on every server of every node at once (a cluster: each master): per node that
  /// answered, its servers' answers; and the causes of those that failed.
  async fn each<T, F>(&self, f: impl Fn(Arc<AdminNode>) -> F) -> (Vec<(usize, Vec<T>)>, Vec<Cause>)
  where
    F: std::future::Future<Output = Result<T, Cause>>,
  {
    let results = join_all(self.groups.iter().map(|g| async {
      let members = g.members().await?;
      let answers = join_all(members.iter().map(|n| f(n.clone()))).await;
      answers.into_iter().collect::<Result<Vec<T>, Cause>>()
    }))
    .await;
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
    // Each node's scan stopped at its own `limit` keys: with several nodes, the keys chosen
    // are looked at again on every node, so each key's count covers them all.
    let (answers, failures) = if self.groups.len() > 1 {
      let mut chosen: Vec<Vec<u8>> = answers
        .into_iter()
        .flat_map(|(_, v)| v.into_iter().flatten().map(|(k, _)| k))
        .collect();
      chosen.sort();
      chosen.dedup();
      chosen.truncate(limit);
      if chosen.is_empty() {
        return Ok(Partial {
          value: Vec::new(),
          failures,
        });
      }
      let again = self
        .each(|n| {
          let keys = chosen.clone();
          async move { n.bounded(n.views(keys)).await }
        })
        .await;
      if again.0.is_empty() {
        return Err(all_failed(again.1));
      }
      again
    } else {
      (answers, failures)
    };
    let mut keys: BTreeMap<Vec<u8>, Seen> = BTreeMap::new();
    for (_, views) in answers {
      for (key, v) in views.into_iter().flatten() {
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
    let nodes = self.groups.len();
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
        async move {
          let mut v = n.bounded(n.views(vec![key])).await?;
          for (_, view) in &mut v {
            view.node = n.label.clone();
          }
          Ok(v)
        }
      })
      .await;
    if answers.is_empty() {
      return Err(all_failed(failures));
    }
    let mut out: Vec<NodeView> = answers
      .into_iter()
      .map(|(_, per_server)| {
        // A cluster's key is on one master: that one's view (or, when none has it, the first).
        let views: Vec<NodeView> = per_server.into_iter().flatten().map(|(_, v)| v).collect();
        let held = views.iter().position(|v| v.token.is_some()).unwrap_or(0);
        views.into_iter().nth(held).unwrap_or_default()
      })
      .collect();
    out.extend(failures.into_iter().map(|c| NodeView {
      node: c.node.clone(),
      error: Some(c),
      ..NodeView::default()
    }));
    Ok(out)
  }

  pub async fn force_unlock(
    &self,
    key: &[u8],
    token: Option<&str>,
  ) -> Result<Partial<usize>, Error> {
    let (answers, failures) = self
      .each(|n| {
        let key = key.to_vec();
        let token = token.map(str::to_string);
        async move {
          // On a cluster, the masters that do not own the key answer MOVED: not deleted there.
          let mut pipe = redis::pipe();
          pipe.ignore_errors();
          match &token {
            None => pipe.del(&key),
            Some(t) => pipe
              .cmd("EVAL")
              .arg(DELETE_IF_HELD_BY)
              .arg(1)
              .arg(&key)
              .arg(t),
          };
          pipe.publish(freed_channel(&key), "");
          let replies: Vec<Value> = n.bounded(n.query(&pipe)).await?;
          Ok(matches!(replies.first(), Some(Value::Int(d)) if *d > 0))
        }
      })
      .await;
    if answers.is_empty() {
      return Err(all_failed(failures));
    }
    Ok(Partial {
      value: answers.iter().filter(|(_, d)| d.iter().any(|x| *x)).count(),
      failures,
    })
  }

  /// Subscribes (once) to every node's keyspace events of `pattern`; whether the first node
  /// that answers sends them (`notify-keyspace-events` has `K` and generic and expiry
  /// events). A server that does not let us read its config is polled.
  pub async fn notifies(&self, pattern: &str) -> bool {
    let mut servers = Vec::new();
    for g in &self.groups {
      servers.extend(g.members().await.unwrap_or_default());
    }
    {
      let mut w = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
      if w.is_empty() {
        for n in &servers {
          w.push(runtime::runtime().spawn(subscribe(
            n.clone(),
            pattern.to_string(),
            self.changes.clone(),
          )));
        }
      }
    }
    for n in &servers {
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
