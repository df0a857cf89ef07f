//! Inbox events as JS reads them: one object per event with a string kind, the outcome's
//! fields, and for a failure the error with its per-node causes.

use napi_derive::napi;

use crate::core::{Error, Event, Outcome};

#[napi(string_enum = "camelCase")]
pub enum EventKind {
  /// An in-memory waiter holds the lock now (`id` is its waiter and lock id).
  Granted,
  /// An in-memory waiter's budget ran out.
  TimedOut,
  /// A remote lock request won (`id` is the request).
  Locked,
  Extended,
  /// Unlock or destroy finished.
  Done,
  Failed,
  /// A drop-in face's command finished: `ints` / `strs`.
  Values,
  /// A drop-in face reports something by itself: `source`, `signal`, `key`, `error`.
  Signal,
}

#[napi(object)]
pub struct NativeCause {
  /// `host:port`
  pub node: String,
  /// 'refused' | 'timeout' | 'dns' | 'tls' | 'auth' | 'closed' | 'server' | 'io'
  pub kind: String,
  pub message: String,
}

#[napi(object)]
pub struct NativeError {
  /// A stable code: E_LOCK_BUSY, E_LOCK_EXPIRED, E_UNAVAILABLE, E_DESTROYED, E_INTERNAL
  pub code: String,
  pub message: String,
  pub attempts: u32,
  pub failures: Vec<NativeCause>,
}

#[napi(object)]
pub struct NativeEvent {
  pub kind: EventKind,
  pub id: f64,
  pub lock_id: Option<f64>,
  pub value: Option<String>,
  pub expiration: Option<f64>,
  pub attempts: Option<u32>,
  pub fence: Option<f64>,
  pub error: Option<NativeError>,
  pub ints: Option<Vec<f64>>,
  pub strs: Option<Vec<Option<String>>>,
  /// The face (its manager id) a signal comes from.
  pub source: Option<f64>,
  pub signal: Option<String>,
  pub key: Option<String>,
}

impl NativeEvent {
  fn bare(kind: EventKind, id: f64) -> Self {
    NativeEvent {
      kind,
      id,
      lock_id: None,
      value: None,
      expiration: None,
      attempts: None,
      fence: None,
      error: None,
      ints: None,
      strs: None,
      source: None,
      signal: None,
      key: None,
    }
  }
}

impl From<Error> for NativeError {
  fn from(e: Error) -> Self {
    NativeError {
      code: e.kind.code().into(),
      message: e.message,
      attempts: e.attempts,
      failures: e
        .causes
        .into_iter()
        .map(|c| NativeCause {
          node: c.node,
          kind: c.kind.as_str().into(),
          message: c.message,
        })
        .collect(),
    }
  }
}

impl From<Event> for NativeEvent {
  fn from(e: Event) -> Self {
    match e {
      Event::Granted(w) => NativeEvent::bare(EventKind::Granted, w.as_f64()),
      Event::TimedOut(w) => NativeEvent::bare(EventKind::TimedOut, w.as_f64()),
      Event::Settled(req, outcome) => {
        let id = req.as_f64();
        match outcome {
          Outcome::Locked(lease) => NativeEvent {
            lock_id: Some(lease.lock_id.as_f64()),
            value: Some(lease.token),
            expiration: Some(lease.expiration),
            attempts: Some(lease.attempts),
            fence: lease.fence.map(|f| f as f64),
            ..NativeEvent::bare(EventKind::Locked, id)
          },
          Outcome::Extended(expiration) => NativeEvent {
            expiration: Some(expiration),
            ..NativeEvent::bare(EventKind::Extended, id)
          },
          Outcome::Done => NativeEvent::bare(EventKind::Done, id),
          Outcome::Failed(e) => NativeEvent {
            error: Some(e.into()),
            ..NativeEvent::bare(EventKind::Failed, id)
          },
          Outcome::Values { ints, strs } => NativeEvent {
            ints: Some(ints.into_iter().map(|i| i as f64).collect()),
            strs: Some(strs),
            ..NativeEvent::bare(EventKind::Values, id)
          },
        }
      }
      Event::Signal(s) => NativeEvent {
        source: Some(s.source.as_f64()),
        signal: Some(s.name.into()),
        key: Some(s.key),
        error: s.error.map(NativeError::from),
        ..NativeEvent::bare(EventKind::Signal, 0.0)
      },
    }
  }
}
