//! Typed ids. Each kind has its own counter; ids are never reused for the life of the
//! process, so a stale handle can never match a later holder, waiter or request.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! id_type {
  ($(#[$doc:meta])* $name:ident) => {
    $(#[$doc])*
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct $name(u64);

    impl $name {
      /// The id as JS sees it: a safe integer (2^53 ids take centuries to use up).
      pub fn as_f64(self) -> f64 {
        self.0 as f64
      }

      /// The raw number, for tables keyed by it.
      pub fn raw(self) -> u64 {
        self.0
      }

      pub fn from_raw(v: u64) -> Self {
        Self(v)
      }

      /// The id JS passed back; `None` for anything that is not a positive integer.
      pub fn from_f64(v: f64) -> Option<Self> {
        (v >= 1.0 && v.fract() == 0.0 && v < 9.007_199_254_740_992e15).then_some(Self(v as u64))
      }
    }
  };
}

id_type!(
  /// A held lock.
  LockId
);
id_type!(
  /// A caller queued for a key of the in-memory table. When it is granted, its ticket
  /// becomes its lock id (`granted()`), so JS resolves the handle without another lookup.
  WaiterId
);
id_type!(
  /// One request to a remote store (lock, unlock, extend, destroy); its outcome arrives
  /// through the inbox under this id.
  RequestId
);
id_type!(
  /// A lock manager (one `create()`).
  ManagerId
);

/// In-memory holders and waiters draw from one counter, because a waiter's ticket becomes
/// its lock id: queue order is ticket order, and no two locks ever share an id.
static TICKETS: AtomicU64 = AtomicU64::new(1);

impl LockId {
  pub fn next() -> Self {
    Self(TICKETS.fetch_add(1, Ordering::Relaxed))
  }
}

impl WaiterId {
  pub fn next() -> Self {
    Self(TICKETS.fetch_add(1, Ordering::Relaxed))
  }

  /// The lock id of this waiter once it holds the key.
  pub fn granted(self) -> LockId {
    LockId(self.0)
  }
}

impl RequestId {
  pub fn next() -> Self {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Self(NEXT.fetch_add(1, Ordering::Relaxed))
  }
}

impl ManagerId {
  pub fn next() -> Self {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Self(NEXT.fetch_add(1, Ordering::Relaxed))
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn waiters_and_locks_share_one_sequence_and_round_trip_through_js() {
    let l = LockId::next();
    let w = WaiterId::next();
    assert!(w.granted() > l);
    assert_eq!(LockId::from_f64(l.as_f64()), Some(l));
    assert_eq!(LockId::from_f64(0.0), None);
    assert_eq!(LockId::from_f64(1.5), None);
    assert_eq!(LockId::from_f64(f64::NAN), None);
  }
}
