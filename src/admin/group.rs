//! What the CLI counts as one Redis node: one server (or a Sentinel-found master), or a
//! Redis Cluster, whose masters are found from its seeds (`CLUSTER SLOTS`) at each call, so
//! a SCAN covers every master and a resharded or failed-over cluster is seen as it is now.

use redis::{AsyncConnectionConfig, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::redis_node::AdminNode;
use crate::config::RedisNode;
use crate::core::{Cause, CauseKind, Error};
use crate::redis::Source;

pub(super) enum Group {
  One(Arc<AdminNode>),
  Cluster(Box<Cluster>),
}

pub(super) struct Cluster {
  label: String,
  seeds: Vec<Arc<AdminNode>>,
  /// The configured seed whose credentials and TLS every master gets.
  template: RedisNode,
  timeouts: (Duration, Duration),
  members: Mutex<HashMap<String, Arc<AdminNode>>>,
}

fn admin_node(
  n: &RedisNode,
  timeout: Duration,
  connect: Duration,
) -> Result<Arc<AdminNode>, Error> {
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
}

impl Group {
  pub fn new(n: &RedisNode, timeout: Duration, connect: Duration) -> Result<Group, Error> {
    let Some(seeds) = &n.cluster else {
      return Ok(Group::One(admin_node(n, timeout, connect)?));
    };
    Ok(Group::Cluster(Box::new(Cluster {
      label: n.label.clone(),
      seeds: seeds
        .iter()
        .map(|s| admin_node(s, timeout, connect))
        .collect::<Result<_, _>>()?,
      template: seeds[0].clone(),
      timeouts: (timeout, connect),
      members: Mutex::new(HashMap::new()),
    })))
  }

  /// The servers to ask now: the node, or the cluster's masters.
  pub async fn members(&self) -> Result<Vec<Arc<AdminNode>>, Cause> {
    match self {
      Group::One(n) => Ok(vec![n.clone()]),
      Group::Cluster(c) => c.masters().await,
    }
  }
}

impl Cluster {
  async fn masters(&self) -> Result<Vec<Arc<AdminNode>>, Cause> {
    let mut last = None;
    for s in &self.seeds {
      match s
        .bounded(s.query::<Vec<Value>>(&redis::cmd("CLUSTER").arg("SLOTS").clone()))
        .await
      {
        Ok(slots) => return self.members_of(&slots),
        Err(c) => last = Some(c),
      }
    }
    Err(last.unwrap_or_else(|| Cause {
      node: self.label.clone(),
      kind: CauseKind::Refused,
      message: "no seed node answered".into(),
    }))
  }

  /// Every master of a `CLUSTER SLOTS` reply (`[from, to, [host, port, id], replicas…]`).
  fn members_of(&self, slots: &[Value]) -> Result<Vec<Arc<AdminNode>>, Cause> {
    let mut out: Vec<Arc<AdminNode>> = Vec::new();
    for range in slots {
      let Value::Array(r) = range else { continue };
      let Some(Value::Array(master)) = r.get(2) else {
        continue;
      };
      let (Some(Value::BulkString(host)), Some(Value::Int(port))) = (master.first(), master.get(1))
      else {
        continue;
      };
      let host = String::from_utf8_lossy(host).into_owned();
      let label = format!("{host}:{port}");
      if out.iter().any(|n| n.label == label) {
        continue;
      }
      let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
      let node = match members.get(&label) {
        Some(n) => n.clone(),
        None => {
          let n = self.member_at(&host, *port as u16).map_err(|e| Cause {
            node: label.clone(),
            kind: CauseKind::Server,
            message: e.message,
          })?;
          members.insert(label, n.clone());
          n
        }
      };
      out.push(node);
    }
    Ok(out)
  }

  fn member_at(&self, host: &str, port: u16) -> Result<Arc<AdminNode>, Error> {
    let mut url = redis::parse_redis_url(&self.template.url)
      .ok_or_else(|| Error::internal("a seed's URL does not parse"))?;
    url
      .set_host(Some(host))
      .map_err(|_| Error::internal("a master's host"))?;
    let _ = url.set_port(Some(port));
    let node = RedisNode {
      url: url.to_string(),
      label: format!("{host}:{port}"),
      tls: self.template.tls.clone(),
      sentinel: None,
      cluster: None,
    };
    admin_node(&node, self.timeouts.0, self.timeouts.1)
  }
}
