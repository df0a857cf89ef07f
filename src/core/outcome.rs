//! How a remote request ended: what the inbox carries back to the JS thread.

use super::{Error, LockId};

/// A lock taken on a remote store.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
  pub lock_id: LockId,
  /// The value stored under the key (32 hex chars).
  pub token: String,
  /// Epoch ms until which the lock is valid.
  pub expiration: f64,
  pub attempts: u32,
  /// A number strictly greater than every earlier fence of the key, where the store has one.
  pub fence: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
  Locked(Lease),
  /// The lock now expires at this epoch ms.
  Extended(f64),
  /// Unlock or destroy finished.
  Done,
  Failed(Error),
  /// A command of a drop-in face: numbers and strings, one per item, as the face defines.
  Values {
    ints: Vec<i64>,
    strs: Vec<Option<String>>,
  },
}
