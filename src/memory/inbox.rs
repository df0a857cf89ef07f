//! Where a JS thread receives what happened to its waiters while it was not calling us:
//! grants and timeouts decided by the timer thread or by another worker thread.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
  /// The waiter now holds the lock (its id is the holder id).
  Granted(Id),
  /// The waiter's wait budget ran out; it has left the queue.
  TimedOut(Id),
  /// A request to a network backend finished; its outcome waits to be taken.
  Done(Id),
}

/// Wakes the JS thread that owns an inbox (a weak threadsafe function in production).
pub trait Wake: Send + Sync {
  fn wake(&self);
}

pub struct Inbox {
  id: u64,
  events: Mutex<Vec<Event>>,
  alive: AtomicBool,
  waker: Box<dyn Wake>,
}

impl Inbox {
  pub fn new(waker: Box<dyn Wake>) -> Self {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Self {
      id: NEXT.fetch_add(1, Ordering::Relaxed),
      events: Mutex::new(Vec::new()),
      alive: AtomicBool::new(true),
      waker,
    }
  }

  pub fn id(&self) -> u64 {
    self.id
  }

  pub fn is_alive(&self) -> bool {
    self.alive.load(Ordering::Acquire)
  }

  /// Called when the owning JS environment goes away (a worker thread exiting).
  pub fn close(&self) {
    self.alive.store(false, Ordering::Release);
  }

  pub(crate) fn push(&self, event: Event) {
    let first = {
      let mut q = self.events.lock();
      q.push(event);
      q.len() == 1
    };
    // One wake per batch: the JS side drains everything queued when it runs.
    if first {
      self.waker.wake();
    }
  }

  pub fn drain(&self) -> Vec<Event> {
    std::mem::take(&mut *self.events.lock())
  }
}
