//! One error type with kinds (as redis-rs's `ErrorKind`), carrying, for a store that could
//! not be reached, a structured cause per node. JS sees `kind.code()` as `err.code`; the
//! JS layer picks the class (TypeError, RangeError, LockError, ...) from the code.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
  /// A configuration value is invalid (unknown type or field, malformed JSON, ...).
  Config,
  /// A configuration value has the wrong JS type (a `TypeError` in JS).
  ConfigType,
  /// A configuration number is out of range (a `RangeError` in JS).
  ConfigRange,
  /// The key stayed held for the whole wait budget.
  Busy,
  /// The lock is no longer held by the caller (extend of an expired or lost lock).
  Expired,
  /// The store could not be reached by a quorum of its nodes.
  Unavailable,
  /// The nodes that kept a quorum from forming refused our credentials: no retry can help.
  Auth,
  /// A Redis Cluster refused keys of one call that hash to different slots: no retry can help.
  CrossSlot,
  /// The manager was destroyed.
  Destroyed,
  /// The store cannot do what was asked (a multi-resource lock on a store without them).
  Unsupported,
  /// A bug or an N-API failure: a panicked or dropped request, a failed conversion.
  Internal,
}

impl ErrorKind {
  pub fn code(self) -> &'static str {
    match self {
      ErrorKind::Config => "E_CONFIG",
      ErrorKind::ConfigType => "E_CONFIG_TYPE",
      ErrorKind::ConfigRange => "E_CONFIG_RANGE",
      ErrorKind::Busy => "E_LOCK_BUSY",
      ErrorKind::Expired => "E_LOCK_EXPIRED",
      ErrorKind::Unavailable => "E_UNAVAILABLE",
      ErrorKind::Auth => "E_AUTH",
      ErrorKind::CrossSlot => "E_CROSSSLOT",
      ErrorKind::Destroyed => "E_DESTROYED",
      ErrorKind::Unsupported => "E_UNSUPPORTED",
      ErrorKind::Internal => "E_INTERNAL",
    }
  }
}

impl AsRef<str> for ErrorKind {
  fn as_ref(&self) -> &str {
    self.code()
  }
}

/// napi-rs needs a code type convertible from its own statuses: those are internal.
impl From<napi::Status> for ErrorKind {
  fn from(_: napi::Status) -> Self {
    ErrorKind::Internal
  }
}

/// Why one node failed an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
  Refused,
  Timeout,
  Dns,
  Tls,
  Auth,
  /// A cluster node refused keys that hash to different slots (`CROSSSLOT`).
  CrossSlot,
  /// The connection broke or was closed.
  Closed,
  /// The server answered with an error (a script error, a wrong type, ...).
  Server,
  Io,
}

impl CauseKind {
  pub fn as_str(self) -> &'static str {
    match self {
      CauseKind::Refused => "refused",
      CauseKind::Timeout => "timeout",
      CauseKind::Dns => "dns",
      CauseKind::Tls => "tls",
      CauseKind::Auth => "auth",
      CauseKind::CrossSlot => "crossslot",
      CauseKind::Closed => "closed",
      CauseKind::Server => "server",
      CauseKind::Io => "io",
    }
  }
}

/// One node's failure. `node` is `host:port` and `message` never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
  pub node: String,
  pub kind: CauseKind,
  pub message: String,
}

impl fmt::Display for Cause {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}: {}", self.node, self.message)
  }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
  pub kind: ErrorKind,
  pub message: String,
  /// Attempts made before giving up (lock and extend).
  pub attempts: u32,
  /// Per-node failures, for `Unavailable`.
  pub causes: Vec<Cause>,
}

impl Error {
  pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
    Error {
      kind,
      message: message.into(),
      attempts: 0,
      causes: Vec::new(),
    }
  }

  pub fn busy(attempts: u32) -> Self {
    Error {
      attempts,
      ..Error::new(ErrorKind::Busy, "the resource is locked")
    }
  }

  pub fn unavailable(attempts: u32, causes: Vec<Cause>) -> Self {
    Error {
      attempts,
      causes,
      ..Error::new(
        ErrorKind::Unavailable,
        "no quorum of nodes could be reached",
      )
    }
  }

  /// A failed attempt: `Auth` when every node that failed refused our credentials (a
  /// retry would be refused again), else `Unavailable`.
  pub fn failed(attempts: u32, causes: Vec<Cause>) -> Self {
    if causes.iter().any(|c| c.kind == CauseKind::CrossSlot) {
      return Error {
        attempts,
        causes,
        ..Error::new(
          ErrorKind::CrossSlot,
          "the keys hash to different slots of the Redis Cluster; give them one hash tag, \
           e.g. {order:42}:items and {order:42}:payment, so they share a slot",
        )
      };
    }
    if !causes.is_empty() && causes.iter().all(|c| c.kind == CauseKind::Auth) {
      Error {
        attempts,
        causes,
        ..Error::new(
          ErrorKind::Auth,
          "access was refused (credentials or ACL permissions)",
        )
      }
    } else {
      Error::unavailable(attempts, causes)
    }
  }

  pub fn expired() -> Self {
    Error::new(ErrorKind::Expired, "the lock has already expired")
  }

  pub fn destroyed() -> Self {
    Error::new(ErrorKind::Destroyed, "the lock manager was destroyed")
  }

  pub fn internal(message: impl Into<String>) -> Self {
    Error::new(ErrorKind::Internal, message)
  }
}

impl fmt::Display for Error {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}: {}", self.kind.code(), self.message)
  }
}

impl std::error::Error for Error {}

impl From<Error> for napi::Error<ErrorKind> {
  fn from(e: Error) -> Self {
    napi::Error::new(e.kind, e.message)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn cause(kind: CauseKind) -> Cause {
    Cause {
      node: "127.0.0.1:1".into(),
      kind,
      message: "why".into(),
    }
  }

  #[test]
  fn a_failure_is_auth_only_when_every_failing_node_refused_the_credentials() {
    let auth = Error::failed(1, vec![cause(CauseKind::Auth), cause(CauseKind::Auth)]);
    assert_eq!((auth.kind.code(), auth.attempts), ("E_AUTH", 1));
    let mixed = Error::failed(1, vec![cause(CauseKind::Auth), cause(CauseKind::Timeout)]);
    assert_eq!(mixed.kind, ErrorKind::Unavailable);
    assert_eq!(Error::failed(1, vec![]).kind, ErrorKind::Unavailable);
  }
}
