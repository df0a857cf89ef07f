//! A Redis Cluster as one node of ours: redis-rs's cluster client routes each command by
//! its key's slot and follows MOVED and ASK (resharding, failovers). Its connection opens on
//! first use (a cluster that is down now is asked again at the next call). Keys of one call
//! must share a slot: the fence and waiting keys do (`scripts::fence_key`), and a
//! multi-resource lock over keys without a common hash tag fails with `E_CROSSSLOT`.

use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::config::RedisNode;
use crate::core::{Error, ErrorKind};

#[derive(Clone)]
pub struct ClusterConn {
  client: Arc<ClusterClient>,
  current: Arc<tokio::sync::Mutex<Option<ClusterConnection>>>,
  bound: Duration,
}

impl ClusterConn {
  pub fn new(
    cfg: &RedisNode,
    timeout: Duration,
    connect_timeout: Duration,
  ) -> Result<ClusterConn, Error> {
    let seeds = cfg.cluster.as_ref().expect("a cluster node");
    let mut b = ClusterClient::builder(seeds.iter().map(|s| s.url.clone()))
      .connection_timeout(connect_timeout)
      .response_timeout(timeout)
      .retries(2);
    if let Some(tls) = &cfg.tls {
      b = b.certs(super::conn::certificates(tls));
      if tls.insecure {
        b = b.tls(redis::TlsMode::Insecure);
      }
    }
    let client = b.build().map_err(|e| {
      Error::new(
        ErrorKind::Config,
        format!("{}: {}", cfg.label, super::describe(&e).1),
      )
    })?;
    Ok(ClusterConn {
      client: Arc::new(client),
      current: Arc::default(),
      bound: connect_timeout + timeout,
    })
  }

  async fn conn(&self) -> redis::RedisResult<ClusterConnection> {
    let mut current = self.current.lock().await;
    if let Some(c) = current.as_ref() {
      return Ok(c.clone());
    }
    let c = tokio::time::timeout(self.bound, self.client.get_async_connection())
      .await
      .map_err(|_| {
        redis::RedisError::from(std::io::Error::new(
          std::io::ErrorKind::TimedOut,
          "timed out",
        ))
      })??;
    *current = Some(c.clone());
    Ok(c)
  }
}

impl ConnectionLike for ClusterConn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    Box::pin(async move { self.conn().await?.req_packed_command(cmd).await })
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    cmd: &'a Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    Box::pin(async move {
      self
        .conn()
        .await?
        .req_packed_commands(cmd, offset, count)
        .await
    })
  }

  fn get_db(&self) -> i64 {
    0
  }
}
