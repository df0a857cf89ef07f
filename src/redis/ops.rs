//! The commands of the lock, wire-compatible with node-redlock v3/v4 (see `scripts.rs`),
//! how they are written into a pipeline, and how replies and errors are read.

use redis::{Pipeline, RedisError, Value};
use std::sync::Arc;
use std::time::Instant;

use super::scripts;
use crate::core::CauseKind;
use crate::remote::Resources;

#[derive(Debug, Clone)]
pub enum Op {
  /// `SET key token NX PX ttl`, and a fence drawn (`scripts::ACQUIRE`); for several keys,
  /// all of them or none (`scripts::ACQUIRE_ALL`). Without `fence`, one key is a plain
  /// `SET NX PX` (no script); several keys always take the script.
  Acquire {
    keys: Resources,
    token: String,
    ttl_ms: u64,
    fence: bool,
  },
  /// Marks that someone waits for `key` (`scripts::waiting_key`, as a failed `ACQUIRE`
  /// does): after a plain `SET NX` that found the key held.
  MarkWaiting { key: Arc<[u8]> },
  /// Compare-and-delete. A node that cannot be reached sends it again every
  /// `node::RETRY_PAUSE` until `retry_until` (when the key expires anyway).
  Release {
    keys: Resources,
    token: String,
    retry_until: Option<Instant>,
    /// Publish that the key is free (an unlock; not the take-back of a failed attempt).
    notify: bool,
  },
  Extend {
    keys: Resources,
    token: String,
    ttl_ms: u64,
  },
  /// The key passes from token `from` to token `to` (see `scripts::TRANSFER`), unless
  /// `handoffs` in a row reached the limit while someone else waits; without `fence`, no
  /// fence is drawn (`scripts::TRANSFER_PLAIN`).
  Transfer {
    key: Arc<[u8]>,
    from: String,
    to: String,
    ttl_ms: u64,
    handoffs: u32,
    fence: bool,
  },
  /// `EXISTS key`
  Inspect { key: Arc<[u8]> },
  /// Raises `key`'s fence counter to `fence` (`scripts::RAISE_FENCE`).
  RaiseFence { key: Arc<[u8]>, fence: u64 },
  /// Any other command (the drop-in faces); its reply is passed on as it is.
  Command(redis::Cmd),
  /// A script of `scripts.rs` on one key (the drop-in faces); its reply is passed on.
  Script {
    script: &'static redis::Script,
    key: Arc<[u8]>,
    args: Vec<String>,
  },
}

/// What a node said about one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
  /// The operation took effect (key set, deleted, extended; or it exists).
  Yes,
  /// The lock was taken (acquired or passed on), with this fence.
  Fenced(u64),
  /// The node answered but refused: the key is held by someone else (or not ours).
  No,
  /// No usable answer: unreachable, timed out, or an error reply.
  Failed(CauseKind, String),
  /// The reply of a `Command` or `Script`.
  Value(Value),
}

/// A scripted operation: its script, keys and arguments.
pub type Scripted = (&'static redis::Script, Vec<Vec<u8>>, Vec<String>);

impl Op {
  /// Whether it takes a key (acquire, handoff): one the JS-thread connection may send by
  /// `EVALSHA` (`encode::Known`), and that is never loaded and sent again after a `NOSCRIPT`.
  pub fn takes_key(&self) -> bool {
    matches!(self, Op::Acquire { .. } | Op::Transfer { .. })
  }

  /// Appends the command to `pipe` (scripts by EVALSHA; see `run_script` for NOSCRIPT).
  pub fn write(&self, pipe: &mut Pipeline) {
    if let Some((key, token, ttl_ms)) = self.plain_acquire() {
      pipe
        .cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms);
    } else if let Op::MarkWaiting { key } = self {
      pipe
        .cmd("SET")
        .arg(scripts::waiting_key(key))
        .arg("1")
        .arg("PX")
        .arg(scripts::WAITING_MS);
    } else if let Some((script, keys, args)) = self.script() {
      // The take-back of a failed attempt is sent with its source: nobody waits for its
      // answer, so a NOSCRIPT (a restarted server) could not be followed by a load, and
      // the attempt's key would stay behind.
      //
      // The same for what takes a key (acquire, handoff): after a NOSCRIPT, the load and
      // the retry would run after whatever was queued behind them, a take-back included,
      // and set a key nobody will release (seen on a fresh server). EVAL costs the
      // script's bytes on the wire, and the server caches it as it does for EVALSHA.
      let source: Option<&str> = match self {
        Op::Release {
          notify: false,
          keys,
          ..
        } => Some(match keys.single() {
          Some(_) => scripts::RELEASE_SOURCE,
          None => scripts::RELEASE_ALL_SOURCE,
        }),
        Op::Acquire { keys, .. } => Some(match keys.single() {
          Some(_) => &scripts::ACQUIRE_SOURCE,
          None => scripts::ACQUIRE_ALL_SOURCE,
        }),
        Op::Transfer { fence: true, .. } => Some(&scripts::TRANSFER_SOURCE),
        Op::Transfer { fence: false, .. } => Some(&scripts::TRANSFER_PLAIN_SOURCE),
        _ => None,
      };
      let cmd = match source {
        Some(src) => pipe.cmd("EVAL").arg(src),
        None => pipe.cmd("EVALSHA").arg(script.get_hash()),
      };
      cmd.arg(keys.len()).arg(keys).arg(args);
    } else if let Op::Inspect { key } = self {
      pipe.cmd("EXISTS").arg(&**key);
    } else if let Op::Command(cmd) = self {
      pipe.add_command(cmd.clone());
    }
  }

  /// The key, token and ttl of an acquisition sent as a plain `SET NX PX`.
  fn plain_acquire(&self) -> Option<(&[u8], &str, u64)> {
    match self {
      Op::Acquire {
        keys,
        token,
        ttl_ms,
        fence: false,
      } => keys.single().map(|k| (&**k, token.as_str(), *ttl_ms)),
      _ => None,
    }
  }

  /// The script, key and arguments of a scripted operation.
  pub fn script(&self) -> Option<Scripted> {
    if self.plain_acquire().is_some() {
      return None;
    }
    let keep = |ttl_ms: &u64| (ttl_ms + scripts::FENCE_KEEP_MS).to_string();
    Some(match self {
      Op::Acquire {
        keys,
        token,
        ttl_ms,
        ..
      } => (
        match keys.single() {
          Some(_) => &*scripts::ACQUIRE,
          None => &*scripts::ACQUIRE_ALL,
        },
        with_side_keys(keys),
        vec![
          token.clone(),
          ttl_ms.to_string(),
          keep(ttl_ms),
          scripts::WAITING_MS.to_string(),
        ],
      ),
      Op::Release {
        keys,
        token,
        notify,
        ..
      } => match keys.single() {
        Some(key) => {
          let script = if *notify {
            &*scripts::RELEASE_NOTIFY
          } else {
            &*scripts::RELEASE
          };
          (script, vec![key.to_vec()], vec![token.clone()])
        }
        None => (
          &*scripts::RELEASE_ALL,
          key_list(keys),
          vec![token.clone(), u8::from(*notify).to_string()],
        ),
      },
      Op::Extend {
        keys,
        token,
        ttl_ms,
      } => (
        match keys.single() {
          Some(_) => &*scripts::EXTEND,
          None => &*scripts::EXTEND_ALL,
        },
        key_list(keys),
        vec![token.clone(), ttl_ms.to_string()],
      ),
      Op::Transfer {
        key,
        from,
        to,
        ttl_ms,
        handoffs,
        fence,
      } => (
        if *fence {
          &*scripts::TRANSFER
        } else {
          &*scripts::TRANSFER_PLAIN
        },
        vec![
          key.to_vec(),
          scripts::fence_key(key),
          scripts::waiting_key(key),
        ],
        vec![
          to.clone(),
          ttl_ms.to_string(),
          keep(ttl_ms),
          from.clone(),
          handoffs.to_string(),
          crate::remote::FAIR_HANDOFFS.to_string(),
        ],
      ),
      Op::RaiseFence { key, fence } => (
        &*scripts::RAISE_FENCE,
        vec![scripts::fence_key(key)],
        vec![fence.to_string(), scripts::FENCE_KEEP_MS.to_string()],
      ),
      Op::Script { script, key, args } => (*script, vec![key.to_vec()], args.clone()),
      Op::Inspect { .. } | Op::Command(_) | Op::MarkWaiting { .. } => return None,
    })
  }
}

fn key_list(keys: &Resources) -> Vec<Vec<u8>> {
  keys.keys().iter().map(|k| k.to_vec()).collect()
}

/// The lock keys, then their fence counters, then their "someone waits" marks.
fn with_side_keys(keys: &Resources) -> Vec<Vec<u8>> {
  let mut all = key_list(keys);
  all.extend(keys.keys().iter().map(|k| scripts::fence_key(k)));
  all.extend(keys.keys().iter().map(|k| scripts::waiting_key(k)));
  all
}

/// The server lost its script cache (restart, SCRIPT FLUSH).
pub fn is_noscript(value: &Value) -> bool {
  matches!(value, Value::ServerError(e) if e.code() == "NOSCRIPT")
}

pub fn judge(op: &Op, value: &Value) -> Reply {
  match (op, value) {
    // An ACL user that may not run a command (or touch a key) the lock needs: asked again,
    // the server says the same (`E_AUTH`, not a retry budget spent on it).
    (_, Value::ServerError(e)) if e.code() == "NOPERM" => Reply::Failed(
      CauseKind::Auth,
      format!(
        "NOPERM: {} (README: the commands oxlock needs)",
        e.details().unwrap_or("")
      ),
    ),
    (_, Value::ServerError(e)) if e.code() == "CROSSSLOT" => Reply::Failed(
      CauseKind::CrossSlot,
      format!("CROSSSLOT: {}", e.details().unwrap_or("")),
    ),
    (_, Value::ServerError(e)) => Reply::Failed(
      CauseKind::Server,
      format!("{}: {}", e.code(), e.details().unwrap_or("")),
    ),
    (Op::Command(_) | Op::Script { .. }, v) => Reply::Value(v.clone()),
    // An acquisition answered with a number ran a script (a plain SET answers OK or nil),
    // and its number is the fence, also when the fence is dropped (several keys, no fencing).
    (Op::Acquire { .. } | Op::Transfer { fence: true, .. }, Value::Int(f)) if *f > 0 => {
      Reply::Fenced(*f as u64)
    }
    (Op::Acquire { .. } | Op::MarkWaiting { .. }, Value::Okay) => Reply::Yes,
    (Op::Acquire { .. }, Value::Nil) => Reply::No,
    (_, Value::Int(1)) => Reply::Yes,
    (_, Value::Int(_)) => Reply::No,
    (_, other) => Reply::Failed(CauseKind::Server, format!("unexpected reply {other:?}")),
  }
}

/// A redis-rs error in words, without anything that could carry credentials.
pub fn describe(e: &RedisError) -> (CauseKind, String) {
  let text = e.to_string();
  let lower = text.to_lowercase();
  if e.is_connection_refusal() {
    (CauseKind::Refused, "connection refused".into())
  } else if e.is_timeout() {
    (CauseKind::Timeout, "timed out".into())
  } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
    (
      CauseKind::Tls,
      format!("TLS handshake failed, the server's certificate was not accepted ({text})"),
    )
  } else if lower.contains("lookup")
    || lower.contains("resolve")
    || lower.contains("name or service")
  {
    (
      CauseKind::Dns,
      format!("cannot resolve the host name (DNS: {text})"),
    )
  } else if lower.contains("crossslot")
    || lower.contains("cross-slot")
    || e.code() == Some("CROSSSLOT")
  {
    (CauseKind::CrossSlot, text)
  } else if lower.contains("noperm") {
    (CauseKind::Auth, text)
  } else if e.kind() == redis::ErrorKind::AuthenticationFailed
    || lower.contains("wrongpass")
    || lower.contains("noauth")
  {
    (
      CauseKind::Auth,
      "authentication failed (wrong user name or password)".into(),
    )
  } else if e.is_connection_dropped() {
    (CauseKind::Closed, "connection lost".into())
  } else if e.is_io_error() {
    (CauseKind::Io, format!("I/O error ({text})"))
  } else {
    (CauseKind::Server, text)
  }
}
