//! The Redis store: Redlock over one or N independent masters, wire-compatible with
//! node-redlock (see `scripts.rs`). Everything above one attempt (local queue, retries,
//! handoff) is `remote::RemoteManager`'s.

mod cluster;
mod conn;
mod encode;
mod js_conn;
mod node;
mod ops;
mod redlock;
mod resp;
pub mod scripts;
mod sentinel;
mod store;
mod subscriber;

#[cfg(test)]
mod tests;

pub use conn::{client, Source};
pub use node::Node;
pub use ops::{describe, Op, Reply};
pub use redlock::{Endpoint, Redlock};
pub use subscriber::freed_channel;

use std::time::Duration;

use crate::config::RedisConfig;
use crate::core::{Error, Inbox};

/// Opens (lazily) a connection to every node of `cfg`; with `js`, on sockets that JS thread
/// drives where a node allows it (see `Node::new`).
pub fn connect(cfg: &RedisConfig, js: Option<&Inbox>) -> Result<Redlock<Node>, Error> {
  let timeout = Duration::from_millis(cfg.node_timeout_ms as u64);
  let connect = Duration::from_millis(cfg.connect_timeout_ms as u64);
  let nodes = cfg
    .nodes
    .iter()
    .map(|n| Node::new(n, timeout, connect, js))
    .collect::<Result<Vec<_>, _>>()?;
  Ok(Redlock::new(nodes, cfg.drift_factor, timeout).fencing(cfg.fencing))
}

/// How long `destroy()` lets running requests clean up: an attempt and its clean-up each
/// take at most a node timeout, plus a retry pause.
pub fn destroy_bound(cfg: &RedisConfig) -> Duration {
  Duration::from_millis((cfg.node_timeout_ms * 3.0) as u64) + Duration::from_secs(1)
}
