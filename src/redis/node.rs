//! One Redis master: a multiplexed connection that reconnects by itself, and the three
//! lock operations, each bounded by the per-node timeout.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

use super::scripts;
use crate::config::RedisNode;

/// What a node said about one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
  /// The operation took effect (key set, deleted or extended).
  Yes,
  /// The node answered but refused: the key is held by someone else (or not ours).
  No,
  /// No usable answer: unreachable, timed out, or an error reply.
  Failed(String),
}

pub struct Node {
  /// `host:port` (never credentials): how errors name the node.
  pub label: String,
  conn: ConnectionManager,
  timeout: Duration,
}

impl Node {
  /// Connects lazily: a node that is down now is retried on every later operation.
  pub fn new(
    cfg: &RedisNode,
    timeout: Duration,
    connect_timeout: Duration,
  ) -> Result<Node, String> {
    let client =
      redis::Client::open(cfg.url.as_str()).map_err(|e| format!("{}: {}", cfg.label, e))?;
    let config = ConnectionManagerConfig::new()
      .set_connection_timeout(Some(connect_timeout))
      .set_response_timeout(Some(timeout))
      .set_number_of_retries(1)
      .set_max_delay(Duration::from_millis(200));
    let _guard = crate::runtime::runtime().enter();
    let conn = ConnectionManager::new_lazy_with_config(client, config)
      .map_err(|e| format!("{}: {}", cfg.label, e))?;
    Ok(Node {
      label: cfg.label.clone(),
      conn,
      timeout,
    })
  }

  /// `SET key token NX PX ttl`.
  pub async fn acquire(&self, key: &str, token: &str, ttl_ms: u64) -> Reply {
    let mut conn = self.conn.clone();
    let cmd = redis::cmd("SET")
      .arg(key)
      .arg(token)
      .arg("NX")
      .arg("PX")
      .arg(ttl_ms)
      .to_owned();
    let fut = async move { cmd.query_async::<Option<String>>(&mut conn).await };
    self
      .bounded(fut, |r| if r.is_some() { Reply::Yes } else { Reply::No })
      .await
  }

  pub async fn release(&self, key: &str, token: &str) -> Reply {
    let mut conn = self.conn.clone();
    let fut = async move {
      let mut inv = scripts::RELEASE.prepare_invoke();
      inv.key(key).arg(token);
      inv.invoke_async::<i64>(&mut conn).await
    };
    self
      .bounded(fut, |n| if n == 1 { Reply::Yes } else { Reply::No })
      .await
  }

  pub async fn extend(&self, key: &str, token: &str, ttl_ms: u64) -> Reply {
    let mut conn = self.conn.clone();
    let fut = async move {
      let mut inv = scripts::EXTEND.prepare_invoke();
      inv.key(key).arg(token).arg(ttl_ms);
      inv.invoke_async::<i64>(&mut conn).await
    };
    self
      .bounded(fut, |n| if n == 1 { Reply::Yes } else { Reply::No })
      .await
  }

  async fn bounded<T>(
    &self,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    judge: impl FnOnce(T) -> Reply,
  ) -> Reply {
    match tokio::time::timeout(self.timeout, fut).await {
      Ok(Ok(v)) => judge(v),
      Ok(Err(e)) => Reply::Failed(describe(&e)),
      Err(_) => Reply::Failed(format!("no reply within {} ms", self.timeout.as_millis())),
    }
  }
}

/// A redis-rs error in words, without anything that could carry credentials.
fn describe(e: &redis::RedisError) -> String {
  if e.is_connection_refusal() {
    "connection refused".into()
  } else if e.is_timeout() {
    "timed out".into()
  } else if e.is_connection_dropped() || e.is_io_error() {
    format!("connection lost ({})", e.category())
  } else {
    e.to_string()
  }
}
