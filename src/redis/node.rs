//! One Redis master: a multiplexed connection that reconnects by itself, and a writer
//! that sends every request queued at the moment it runs as one pipeline (one write),
//! without waiting for earlier batches: a lone request goes out at once, a burst of
//! requests shares writes. Each request is bounded by the per-node timeout.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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

#[derive(Debug, Clone)]
enum Op {
  /// `SET key token NX PX ttl`
  Acquire {
    key: String,
    token: String,
    ttl_ms: u64,
  },
  Release {
    key: String,
    token: String,
  },
  Extend {
    key: String,
    token: String,
    ttl_ms: u64,
  },
  /// The key passes from token `from` to token `to` (see `scripts::TRANSFER`).
  Transfer {
    key: String,
    from: String,
    to: String,
    ttl_ms: u64,
  },
}

struct Job {
  op: Op,
  reply: oneshot::Sender<Reply>,
}

/// The most requests one write carries.
const MAX_BATCH: usize = 512;

pub struct Node {
  /// `host:port` (never credentials): how errors name the node.
  pub label: String,
  jobs: mpsc::UnboundedSender<Job>,
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
    let rt = crate::runtime::runtime();
    let conn = {
      let _guard = rt.enter();
      ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| format!("{}: {}", cfg.label, e))?
    };
    let (jobs, rx) = mpsc::unbounded_channel();
    rt.spawn(write_batches(rx, conn, timeout));
    Ok(Node {
      label: cfg.label.clone(),
      jobs,
    })
  }

  pub async fn acquire(&self, key: &str, token: &str, ttl_ms: u64) -> Reply {
    self
      .ask(Op::Acquire {
        key: key.into(),
        token: token.into(),
        ttl_ms,
      })
      .await
  }

  pub async fn release(&self, key: &str, token: &str) -> Reply {
    self
      .ask(Op::Release {
        key: key.into(),
        token: token.into(),
      })
      .await
  }

  pub async fn extend(&self, key: &str, token: &str, ttl_ms: u64) -> Reply {
    self
      .ask(Op::Extend {
        key: key.into(),
        token: token.into(),
        ttl_ms,
      })
      .await
  }

  pub async fn transfer(&self, key: &str, from: &str, to: &str, ttl_ms: u64) -> Reply {
    self
      .ask(Op::Transfer {
        key: key.into(),
        from: from.into(),
        to: to.into(),
        ttl_ms,
      })
      .await
  }

  async fn ask(&self, op: Op) -> Reply {
    let (reply, answer) = oneshot::channel();
    if self.jobs.send(Job { op, reply }).is_err() {
      return Reply::Failed("closed".into());
    }
    // The writer always answers within the node timeout; a dropped sender means shutdown.
    answer
      .await
      .unwrap_or_else(|_| Reply::Failed("closed".into()))
  }
}

/// Ends when the node is dropped (every sender gone); the connection closes with it.
async fn write_batches(
  mut rx: mpsc::UnboundedReceiver<Job>,
  conn: ConnectionManager,
  timeout: Duration,
) {
  while let Some(first) = rx.recv().await {
    // Let every task that is ready run first (tokio would run us next, from its LIFO
    // slot): what they queue meanwhile joins this write. With nothing else ready this
    // returns at once, so a lone request is not held back.
    tokio::task::yield_now().await;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
      match rx.try_recv() {
        Ok(job) => batch.push(job),
        Err(_) => break,
      }
    }
    tokio::spawn(send_batch(batch, conn.clone(), timeout));
  }
}

async fn send_batch(batch: Vec<Job>, mut conn: ConnectionManager, timeout: Duration) {
  let mut pipe = redis::pipe();
  pipe.ignore_errors();
  for job in &batch {
    match &job.op {
      Op::Acquire { key, token, ttl_ms } => {
        pipe
          .cmd("SET")
          .arg(key)
          .arg(token)
          .arg("NX")
          .arg("PX")
          .arg(ttl_ms);
      }
      Op::Release { key, token } => {
        pipe
          .cmd("EVALSHA")
          .arg(scripts::RELEASE.get_hash())
          .arg(1)
          .arg(key)
          .arg(token);
      }
      Op::Extend { key, token, ttl_ms } => {
        pipe
          .cmd("EVALSHA")
          .arg(scripts::EXTEND.get_hash())
          .arg(1)
          .arg(key)
          .arg(token)
          .arg(ttl_ms);
      }
      Op::Transfer {
        key,
        from,
        to,
        ttl_ms,
      } => {
        pipe
          .cmd("EVALSHA")
          .arg(scripts::TRANSFER.get_hash())
          .arg(1)
          .arg(key)
          .arg(from)
          .arg(to)
          .arg(ttl_ms);
      }
    }
  }
  let replies = tokio::time::timeout(timeout, pipe.query_async::<Vec<Value>>(&mut conn)).await;
  match replies {
    Ok(Ok(values)) if values.len() == batch.len() => {
      for (job, value) in batch.into_iter().zip(values) {
        let reply = judge(&job.op, &value);
        if reply == Reply::Failed("NOSCRIPT".into()) {
          // The server lost its script cache (restart, SCRIPT FLUSH): load and run it.
          tokio::spawn(run_script(job, conn.clone(), timeout));
        } else {
          let _ = job.reply.send(reply);
        }
      }
    }
    Ok(Ok(_)) => fail_all(batch, "unexpected reply count".into()),
    Ok(Err(e)) => fail_all(batch, describe(&e)),
    Err(_) => fail_all(batch, format!("no reply within {} ms", timeout.as_millis())),
  }
}

/// One script call through redis-rs's EVALSHA-then-load path.
async fn run_script(job: Job, mut conn: ConnectionManager, timeout: Duration) {
  let fut = async {
    match &job.op {
      Op::Release { key, token } => {
        let mut inv = scripts::RELEASE.prepare_invoke();
        inv.key(key).arg(token);
        inv.invoke_async::<i64>(&mut conn).await
      }
      Op::Extend { key, token, ttl_ms } => {
        let mut inv = scripts::EXTEND.prepare_invoke();
        inv.key(key).arg(token).arg(*ttl_ms);
        inv.invoke_async::<i64>(&mut conn).await
      }
      Op::Transfer {
        key,
        from,
        to,
        ttl_ms,
      } => {
        let mut inv = scripts::TRANSFER.prepare_invoke();
        inv.key(key).arg(from).arg(to).arg(*ttl_ms);
        inv.invoke_async::<i64>(&mut conn).await
      }
      Op::Acquire { .. } => Ok(0),
    }
  };
  let reply = match tokio::time::timeout(timeout, fut).await {
    Ok(Ok(1)) => Reply::Yes,
    Ok(Ok(_)) => Reply::No,
    Ok(Err(e)) => Reply::Failed(describe(&e)),
    Err(_) => Reply::Failed(format!("no reply within {} ms", timeout.as_millis())),
  };
  let _ = job.reply.send(reply);
}

fn judge(op: &Op, value: &Value) -> Reply {
  match (op, value) {
    (_, Value::ServerError(e)) if e.code() == "NOSCRIPT" => Reply::Failed("NOSCRIPT".into()),
    (_, Value::ServerError(e)) => {
      Reply::Failed(format!("{}: {}", e.code(), e.details().unwrap_or("")))
    }
    (Op::Acquire { .. }, Value::Okay) => Reply::Yes,
    (Op::Acquire { .. }, Value::SimpleString(s)) if s == "OK" => Reply::Yes,
    (Op::Acquire { .. }, Value::Nil) => Reply::No,
    (_, Value::Int(1)) => Reply::Yes,
    (_, Value::Int(_)) => Reply::No,
    (_, other) => Reply::Failed(format!("unexpected reply {other:?}")),
  }
}

fn fail_all(batch: Vec<Job>, why: String) {
  for job in batch {
    let _ = job.reply.send(Reply::Failed(why.clone()));
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
