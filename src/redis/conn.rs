//! Where one node's commands go: a fixed address (redis-rs's `ConnectionManager`, which
//! reconnects by itself), the master that Redis Sentinel names now (`SentinelConn`), a
//! cluster, or a socket the JS thread drives; and the redis-rs client (TLS included) each is
//! built from. The writer and the subscriber of a node see only these types.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::cluster::ClusterConn;
use super::js_conn::JsConn;
use super::ops::describe;
use super::sentinel::{SentinelConn, Sentinels};
use crate::config::RedisNode;
use crate::core::{Error, ErrorKind};

/// How to reach the node (for connections of its own, such as the subscriber's).
#[derive(Clone)]
pub enum Source {
  Direct(Box<redis::Client>),
  Sentinel(Arc<Sentinels>),
  /// A cluster's seeds, taken in turn.
  Seeds(Arc<(Vec<redis::Client>, AtomicUsize)>),
}

impl Source {
  /// How to reach the configured node `cfg`.
  pub fn of(
    cfg: &crate::config::RedisNode,
    timeout: std::time::Duration,
    connect_timeout: std::time::Duration,
  ) -> Result<Source, crate::core::Error> {
    Ok(if cfg.sentinel.is_some() {
      Source::Sentinel(Arc::new(Sentinels::new(cfg, timeout, connect_timeout)?))
    } else if let Some(seeds) = &cfg.cluster {
      // Pub/sub is cluster-wide (a PUBLISH reaches every node): any seed serves, the next
      // one after a failure.
      let clients = seeds.iter().map(client).collect::<Result<Vec<_>, _>>()?;
      Source::Seeds(Arc::new((clients, AtomicUsize::new(0))))
    } else {
      Source::Direct(Box::new(client(cfg)?))
    })
  }

  /// The database the node's connections select.
  pub fn db(&self) -> i64 {
    match self {
      Source::Direct(c) => c.get_connection_info().redis_settings().db(),
      Source::Sentinel(s) => s.db(),
      Source::Seeds(_) => 0,
    }
  }

  /// A client of the node now (behind sentinels: of the current master).
  pub async fn client(&self) -> RedisResult<redis::Client> {
    match self {
      Source::Direct(c) => Ok((**c).clone()),
      Source::Sentinel(s) => s.master().await,
      Source::Seeds(s) => {
        let i = s.1.fetch_add(1, Ordering::Relaxed) % s.0.len().max(1);
        s.0.get(i).cloned().ok_or_else(|| {
          redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no seed node"))
        })
      }
    }
  }
}

/// The node's command connection.
#[derive(Clone)]
pub enum Conn {
  Direct(ConnectionManager),
  /// A plain host and port on a socket the JS thread drives.
  Js(JsConn),
  Sentinel(SentinelConn),
  Cluster(ClusterConn),
}

impl Conn {
  /// Whether one pipeline may carry commands of different keys (a cluster routes a
  /// pipeline to one node, so each request goes alone there).
  pub fn batches(&self) -> bool {
    !matches!(self, Conn::Cluster(_))
  }

  /// A request sent at `sent` went unanswered for the whole node timeout. redis-rs's
  /// connections handle that themselves; ours is given up if it was silent all that time.
  pub fn timed_out(&self, sent: std::time::Instant, why: &str) {
    if let Conn::Js(c) = self {
      c.give_up_if_silent(sent, why);
    }
  }
}

impl ConnectionLike for Conn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    match self {
      Conn::Direct(c) => c.req_packed_command(cmd),
      Conn::Js(c) => c.req_packed_command(cmd),
      Conn::Sentinel(c) => c.req_packed_command(cmd),
      Conn::Cluster(c) => c.req_packed_command(cmd),
    }
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    cmd: &'a Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    match self {
      Conn::Direct(c) => c.req_packed_commands(cmd, offset, count),
      Conn::Js(c) => c.req_packed_commands(cmd, offset, count),
      Conn::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
      Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
    }
  }

  fn get_db(&self) -> i64 {
    match self {
      Conn::Direct(c) => c.get_db(),
      Conn::Js(c) => c.get_db(),
      Conn::Sentinel(c) => c.get_db(),
      Conn::Cluster(c) => c.get_db(),
    }
  }
}

/// What redis-rs needs of a node's TLS options (a private CA, a client certificate); installs
/// the process's rustls crypto provider first (a second install is a no-op).
pub(super) fn certificates(tls: &crate::config::TlsConfig) -> redis::TlsCertificates {
  let _ = rustls::crypto::ring::default_provider().install_default();
  redis::TlsCertificates {
    client_tls: match (&tls.cert, &tls.key) {
      (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
        client_cert: cert.clone(),
        client_key: key.clone(),
      }),
      _ => None,
    },
    root_cert: tls.ca.clone(),
  }
}

/// The redis-rs client of one configured node (TLS roots and client certificate included);
/// it connects only when asked to.
pub fn client(cfg: &RedisNode) -> Result<redis::Client, Error> {
  let config_error = |e: redis::RedisError| {
    Error::new(
      ErrorKind::Config,
      format!("{}: {}", cfg.label, describe(&e).1),
    )
  };
  match &cfg.tls {
    Some(tls) => redis::Client::build_with_tls(cfg.url.as_str(), certificates(tls)),
    None => redis::Client::open(cfg.url.as_str()),
  }
  .map_err(config_error)
}
