//! The Rust side of the drop-in entry points (`compat/*.js`): fast-locky, exclusive-lock and
//! distributed-locks' storages, each with the key layout and commands of the package it
//! replaces. They share `Client`: one connection (`Link`: a Redis node, the same pipelined
//! connection as the Redlock store, a PostgreSQL pool, or a MongoDB client), requests that settle once into
//! the JS thread's inbox, and signals for what a face reports by itself (expiries,
//! refreshes, lost locks).

pub mod distributed_locks;
pub mod exclusive;
pub mod fast_locky;

use parking_lot::Mutex;
use redis::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{RedisNode, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_NODE_TIMEOUT_MS};
use crate::core::{task, Cause, Error, Event, Inbox, ManagerId, Outcome, RequestId, Signal};
use crate::redis::{Endpoint, Node, Op, Reply};

/// What a face talks to.
pub enum Link {
  Redis(Box<Node>),
  Postgres(Box<distributed_locks::postgres::Storage>),
  /// Shared with the storage's background job (clock refresh, clean-up).
  Mongo(Arc<distributed_locks::mongo::Storage>),
}

pub struct Client {
  pub id: ManagerId,
  pub link: Link,
  inbox: Arc<Inbox>,
  /// Background work of the face (watchers, refreshers), by name; aborted on close.
  jobs: Mutex<HashMap<String, tokio::task::AbortHandle>>,
  /// Keys whose refresh is on the wire right now (exclusive-lock's `is_refreshing`).
  pub refreshing: Mutex<std::collections::HashSet<String>>,
}

impl Client {
  /// A face on one Redis node.
  pub fn connect(cfg: &RedisNode, inbox: Arc<Inbox>) -> Result<Arc<Client>, Error> {
    let node = Node::new(
      cfg,
      Duration::from_millis(DEFAULT_NODE_TIMEOUT_MS as u64),
      Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS as u64),
      None,
    )?;
    Ok(Client::new(Link::Redis(Box::new(node)), inbox))
  }

  pub fn new(link: Link, inbox: Arc<Inbox>) -> Arc<Client> {
    Arc::new(Client {
      id: ManagerId::next(),
      link,
      inbox,
      jobs: Mutex::new(HashMap::new()),
      refreshing: Mutex::new(std::collections::HashSet::new()),
    })
  }

  fn node(&self) -> Result<&Node, Error> {
    match &self.link {
      Link::Redis(n) => Ok(n),
      _ => Err(Error::internal(
        "a Redis command on a face that is not on Redis",
      )),
    }
  }

  /// Runs `fut` as a request; its outcome arrives in the inbox under the returned id.
  pub fn request<F>(self: &Arc<Self>, fut: F) -> RequestId
  where
    F: Future<Output = Outcome> + Send + 'static,
  {
    let req = RequestId::next();
    let inbox = self.inbox.clone();
    task::spawn_settled(&crate::core::Spawner::Runtime, fut, move |o| {
      inbox.push(Event::Settled(req, o))
    });
    req
  }

  pub fn signal(&self, name: &'static str, key: &str, error: Option<Error>) {
    self.inbox.push(Event::Signal(Signal {
      source: self.id,
      name,
      key: key.to_string(),
      error,
    }));
  }

  /// Sends `ops` in one pipelined write and waits for every reply; the first failure
  /// (unreachable, timed out, an error reply) is the error of the whole call.
  pub async fn run(&self, ops: Vec<Op>) -> Result<Vec<Value>, Error> {
    let node = self.node()?;
    // Queued now, all of them, so they share one write.
    let replies: Vec<_> = ops.into_iter().map(|op| node.call(op)).collect();
    let mut out = Vec::with_capacity(replies.len());
    for r in futures_util::future::join_all(replies).await {
      out.push(match r {
        Reply::Value(v) => v,
        Reply::Yes => Value::Int(1),
        Reply::Fenced(f) => Value::Int(f as i64),
        Reply::No => Value::Int(0),
        Reply::Failed(kind, message) => {
          let cause = Cause {
            node: node.label().to_string(),
            kind,
            message,
          };
          return Err(Error::unavailable(1, vec![cause]));
        }
      });
    }
    Ok(out)
  }

  /// Starts (or replaces) the background job `name`.
  pub fn start_job<F>(&self, name: &str, fut: F)
  where
    F: Future<Output = ()> + Send + 'static,
  {
    let job = crate::core::runtime::runtime().spawn(fut).abort_handle();
    if let Some(old) = self.jobs.lock().insert(name.to_string(), job) {
      old.abort();
    }
  }

  /// Stops the background job `name`; false if there was none.
  pub fn stop_job(&self, name: &str) -> bool {
    self.jobs.lock().remove(name).map(|j| j.abort()).is_some()
  }

  /// Stops every background job; the connection closes when the last request is done.
  pub fn close(&self) {
    for (_, j) in self.jobs.lock().drain() {
      j.abort();
    }
  }
}

/// A reply as a number: integers as they are, OK as 1, nil as 0.
pub fn int(v: &Value) -> i64 {
  match v {
    Value::Int(n) => *n,
    Value::Okay => 1,
    Value::SimpleString(s) if s == "OK" => 1,
    Value::BulkString(b) => std::str::from_utf8(b)
      .ok()
      .and_then(|s| s.parse().ok())
      .unwrap_or(0),
    _ => 0,
  }
}

/// A reply as a string: nil as None.
pub fn string(v: &Value) -> Option<String> {
  match v {
    Value::Nil => None,
    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
    Value::SimpleString(s) => Some(s.clone()),
    Value::Okay => Some("OK".into()),
    Value::Int(n) => Some(n.to_string()),
    other => Some(format!("{other:?}")),
  }
}

/// The members of an array reply, as strings.
pub fn strings(v: &Value) -> Vec<Option<String>> {
  match v {
    Value::Array(items) | Value::Set(items) => items.iter().map(string).collect(),
    Value::Nil => Vec::new(),
    other => vec![string(other)],
  }
}

/// The outcome of a face command: its numbers and strings, or its error.
pub fn values(r: Result<(Vec<i64>, Vec<Option<String>>), Error>) -> Outcome {
  match r {
    Ok((ints, strs)) => Outcome::Values { ints, strs },
    Err(e) => Outcome::Failed(e),
  }
}
