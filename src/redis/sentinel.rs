//! A master found through Redis Sentinel, and found again after a failover: the sentinels
//! are asked in turn (`SENTINEL get-master-addr-by-name`), the node they name must say it is
//! the master (`ROLE`), and the connection is dropped, to be found again at the next call,
//! when it breaks or the node answers `READONLY` (it was demoted). What was in flight then
//! fails; the callers' retries reach the new master.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};
use std::sync::Arc;
use std::time::Duration;

use super::conn::client;
use crate::config::RedisNode;

pub struct Sentinels {
  /// The configured node (credentials, db, TLS of the master) with its `SentinelSpec`.
  node: RedisNode,
  sentinels: Vec<redis::Client>,
  config: AsyncConnectionConfig,
  /// Bound on asking one sentinel, and on connecting to the master.
  timeout: Duration,
}

/// Why no master could be found (the sentinels answered, or a node said it is none).
fn failed(what: impl Into<String>) -> RedisError {
  RedisError::from((ErrorKind::InvalidClientConfig, "sentinel", what.into()))
}

fn timed_out() -> RedisError {
  std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out").into()
}

impl Sentinels {
  pub fn new(
    node: &RedisNode,
    timeout: Duration,
    connect_timeout: Duration,
  ) -> Result<Sentinels, crate::core::Error> {
    let spec = node.sentinel.as_ref().expect("a sentinel node");
    Ok(Sentinels {
      node: node.clone(),
      sentinels: spec
        .sentinels
        .iter()
        .map(client)
        .collect::<Result<_, _>>()?,
      config: AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(timeout)),
      timeout: connect_timeout + timeout,
    })
  }

  pub fn db(&self) -> i64 {
    self.node.sentinel.as_ref().map_or(0, |s| s.db())
  }

  fn name(&self) -> &str {
    &self.node.sentinel.as_ref().expect("a sentinel node").name
  }

  /// The current master's address, from the first sentinel that knows it. They are asked
  /// at once: an unreachable or paused sentinel never holds the answer of the others back.
  async fn ask(&self) -> Result<(String, u16), RedisError> {
    let asks = self.sentinels.iter().map(|s| {
      Box::pin(async move {
        let asked = tokio::time::timeout(self.timeout, async {
          let mut c = s
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
          redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(self.name())
            .query_async::<Option<(String, u16)>>(&mut c)
            .await
        })
        .await;
        match asked {
          Ok(Ok(Some(addr))) => Ok(addr),
          Ok(Ok(None)) => Err(failed(format!(
            "no sentinel knows a master named {}",
            self.name()
          ))),
          Ok(Err(e)) => Err(e),
          Err(_) => Err(timed_out()),
        }
      })
    });
    futures_util::future::select_ok(asks)
      .await
      .map(|(addr, _)| addr)
  }

  /// A client of the node the sentinels name now, once it says it is the master.
  pub async fn master(&self) -> Result<redis::Client, RedisError> {
    let (host, port) = self.ask().await?;
    let spec = self.node.sentinel.as_ref().expect("a sentinel node");
    let node = spec.master_at(&self.node, &host, port);
    let c = client(&node).map_err(|e| failed(e.message))?;
    let role = tokio::time::timeout(self.timeout, async {
      let mut conn = c
        .get_multiplexed_async_connection_with_config(&self.config)
        .await?;
      redis::cmd("ROLE")
        .query_async::<Vec<Value>>(&mut conn)
        .await
    })
    .await
    .map_err(|_| timed_out())??;
    match role.first() {
      Some(Value::BulkString(r)) if r == b"master" => Ok(c),
      _ => Err(failed(format!(
        "{host}:{port}, named by the sentinels, is not a master (yet)"
      ))),
    }
  }
}

/// The connection a sentinel-found node writes on: the current master's, opened on first
/// use and again after a failure or a demotion.
#[derive(Clone)]
pub struct SentinelConn {
  sentinels: Arc<Sentinels>,
  current: Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
  db: i64,
}

impl SentinelConn {
  pub fn new(sentinels: Arc<Sentinels>) -> SentinelConn {
    let db = sentinels.db();
    SentinelConn {
      sentinels,
      current: Arc::default(),
      db,
    }
  }

  async fn conn(&self) -> Result<MultiplexedConnection, RedisError> {
    let mut current = self.current.lock().await;
    if let Some(c) = current.as_ref() {
      return Ok(c.clone());
    }
    let master = self.sentinels.master().await?;
    let c = tokio::time::timeout(
      self.sentinels.timeout,
      master.get_multiplexed_async_connection_with_config(&self.sentinels.config),
    )
    .await
    .map_err(|_| timed_out())??;
    *current = Some(c.clone());
    Ok(c)
  }

  /// After a call: whether its connection must be found again.
  async fn after<T>(&self, r: &Result<T, RedisError>, values: &[Value]) {
    let lost = match r {
      Err(e) => !matches!(e.kind(), ErrorKind::Server(_)) || is_readonly(e.code()),
      Ok(_) => values
        .iter()
        .any(|v| matches!(v, Value::ServerError(e) if is_readonly(Some(e.code())))),
    };
    if lost {
      *self.current.lock().await = None;
    }
  }
}

fn is_readonly(code: Option<&str>) -> bool {
  code == Some("READONLY")
}

/// Forgets the connection when a call is dropped before it ended (the writer's timeout
/// fired): a master that stopped answering without closing is found again at the next call,
/// not kept until TCP gives up.
struct ForgetIfDropped(Option<Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>>);

impl ForgetIfDropped {
  fn ended(mut self) {
    self.0 = None;
  }
}

impl Drop for ForgetIfDropped {
  fn drop(&mut self) {
    let Some(current) = self.0.take() else { return };
    let forgotten = match current.try_lock() {
      Ok(mut c) => {
        *c = None;
        true
      }
      Err(_) => false,
    };
    if !forgotten {
      if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move { *current.lock().await = None });
      }
    }
  }
}

impl ConnectionLike for SentinelConn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    Box::pin(async move {
      let guard = ForgetIfDropped(Some(self.current.clone()));
      let r = match self.conn().await {
        Ok(mut c) => c.req_packed_command(cmd).await,
        Err(e) => Err(e),
      };
      guard.ended();
      let v = r.as_ref().map(|v| vec![v.clone()]).unwrap_or_default();
      self.after(&r, &v).await;
      r
    })
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    cmd: &'a Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    Box::pin(async move {
      let guard = ForgetIfDropped(Some(self.current.clone()));
      let r = match self.conn().await {
        Ok(mut c) => c.req_packed_commands(cmd, offset, count).await,
        Err(e) => Err(e),
      };
      guard.ended();
      let empty = Vec::new();
      let v = r.as_ref().unwrap_or(&empty).clone();
      self.after(&r, &v).await;
      r
    })
  }

  fn get_db(&self) -> i64 {
    self.db
  }
}
