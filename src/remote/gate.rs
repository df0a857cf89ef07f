//! A key's local queue: whether a caller of this manager has the key, and who waits, in
//! call order (decided when `lock()` is called). A turn may come with a baton: the token
//! under which the previous local holder still has the key in the store, so that taking
//! it over costs one round trip instead of a delete and a set.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// The previous local holder's token and when its key expires, if it handed the key on.
#[derive(Debug, Clone)]
pub struct Baton {
  pub token: String,
  pub expires_at: Instant,
  /// How many local handoffs in a row brought the key to its holder (0: taken fresh).
  pub handoffs: u32,
}

#[derive(Default)]
struct Gate {
  taken: bool,
  waiters: VecDeque<oneshot::Sender<Option<Baton>>>,
}

#[derive(Default)]
pub struct Gates(Mutex<HashMap<Arc<[u8]>, Gate>>);

impl Gates {
  /// Takes the key's gate now (`None`), or a place in its queue.
  pub fn enter(&self, key: &Arc<[u8]>) -> Option<oneshot::Receiver<Option<Baton>>> {
    let mut gates = self.0.lock();
    let gate = gates.entry(key.clone()).or_default();
    if !gate.taken {
      gate.taken = true;
      return None;
    }
    let (tx, rx) = oneshot::channel();
    gate.waiters.push_back(tx);
    Some(rx)
  }

  /// Passes the gate (and `baton`) to the first waiter still waiting, or frees it (idle
  /// keys cost nothing). Returns the baton if nobody took it: its token must be released.
  /// Waiters whose receiver is gone (aborted, timed out) are skipped.
  pub fn leave(&self, key: &[u8], mut baton: Option<Baton>) -> Option<Baton> {
    let mut gates = self.0.lock();
    if let Some(gate) = gates.get_mut(key) {
      while let Some(next) = gate.waiters.pop_front() {
        match next.send(baton) {
          Ok(()) => return None,
          Err(back) => baton = back,
        }
      }
      gates.remove(key);
    }
    baton
  }

  /// Hands the key, still held under `baton` in the store, to the first local waiter.
  /// False (and the gate stays taken) when nobody waits.
  pub fn hand_on(&self, key: &[u8], baton: &Baton) -> bool {
    let mut gates = self.0.lock();
    let Some(gate) = gates.get_mut(key) else {
      return false;
    };
    while let Some(next) = gate.waiters.pop_front() {
      if next.send(Some(baton.clone())).is_ok() {
        return true;
      }
    }
    false
  }

  /// Keys with a gate: held or awaited through this manager.
  pub fn len(&self) -> usize {
    self.0.lock().len()
  }
}
