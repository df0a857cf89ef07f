//! Inbox events as JS reads them (`lib/events.js` unpacks them): the frequent ones packed
//! into one buffer, the rest as objects with a string kind, the outcome's fields, and for
//! a failure the error with its per-node causes.

use napi_derive::napi;
use std::cell::RefCell;

use crate::core::{Error, Event, Outcome};

thread_local! {
  /// The events of the last `pack` left as objects, for `drainObjects`.
  static OBJECTS: RefCell<Vec<NativeEvent>> = const { RefCell::new(Vec::new()) };
}

/// Packed kinds (`lib/events.js` has the same numbers).
const GRANTED: f64 = 0.0;
const TIMED_OUT: f64 = 1.0;
const LOCKED: f64 = 2.0;
const EXTENDED: f64 = 3.0;
const DONE: f64 = 4.0;
/// The next object of `drainObjects`.
const OBJECT: f64 = 5.0;

/// Packs `events`, in order, as little-endian f64s (the JS side reads them through a
/// Float64Array): the count, then per event [kind, id] and, for `LOCKED`, [lock id,
/// expiration, attempts, fence (NaN: none), token length] and the token's bytes, padded
/// to a whole f64; for `EXTENDED`, [expiration]. An `OBJECT` is taken from `take_objects`.
/// (An object per event cost more than the rest of a remote lock's work: N-API defines
/// each property by a name it looks up again every time.)
pub fn pack(events: Vec<Event>) -> Vec<u8> {
  let mut out = Vec::with_capacity(8 + events.len() * 88);
  out.extend_from_slice(&(events.len() as f64).to_le_bytes());
  let mut objects = Vec::new();
  fn put(out: &mut Vec<u8>, values: &[f64]) {
    for v in values {
      out.extend_from_slice(&v.to_le_bytes());
    }
  }
  for e in events {
    match e {
      Event::Granted(w) => put(&mut out, &[GRANTED, w.as_f64()]),
      Event::TimedOut(w) => put(&mut out, &[TIMED_OUT, w.as_f64()]),
      Event::Settled(req, Outcome::Locked(lease)) => {
        let fence = lease.fence.map_or(f64::NAN, |f| f as f64);
        let token = lease.token.as_bytes();
        put(
          &mut out,
          &[
            LOCKED,
            req.as_f64(),
            lease.lock_id.as_f64(),
            lease.expiration,
            lease.attempts as f64,
            fence,
            token.len() as f64,
          ],
        );
        out.extend_from_slice(token);
        out.resize(out.len().next_multiple_of(8), 0);
      }
      Event::Settled(req, Outcome::Extended(expiration)) => {
        put(&mut out, &[EXTENDED, req.as_f64(), expiration])
      }
      Event::Settled(req, Outcome::Done) => put(&mut out, &[DONE, req.as_f64()]),
      other => {
        put(&mut out, &[OBJECT, 0.0]);
        objects.push(NativeEvent::from(other));
      }
    }
  }
  // (Replaced, not appended to: the JS side takes them with the pack that has them.)
  OBJECTS.with_borrow_mut(|o| *o = objects);
  out
}

/// The objects of the last `pack`.
pub fn take_objects() -> Vec<NativeEvent> {
  OBJECTS.with_borrow_mut(std::mem::take)
}

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
