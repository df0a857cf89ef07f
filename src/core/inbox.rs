//! Where a JS thread receives what happened while it was not calling us: grants and
//! timeouts decided by the timer thread or another worker thread, and the outcomes of
//! remote requests. Events that arrive together wake the thread once.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Error, ManagerId, Outcome, RequestId, WaiterId};

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
  /// The in-memory waiter now holds the lock (as `WaiterId::granted()`).
  Granted(WaiterId),
  /// The in-memory waiter's budget ran out; it has left the queue.
  TimedOut(WaiterId),
  /// A remote request finished.
  Settled(RequestId, Outcome),
  /// Something a drop-in face reports by itself (a lock expired, was refreshed or lost).
  Signal(Signal),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
  /// The face that reports it.
  pub source: ManagerId,
  /// The event name the face emits ('expire', 'refreshed', 'lost', 'error', 'released').
  pub name: &'static str,
  /// The Redis key it is about.
  pub key: String,
  pub error: Option<Error>,
}

/// Wakes the JS thread that owns an inbox (a weak threadsafe function in production).
pub trait Wake: Send + Sync {
  fn wake(&self);
}

pub struct Inbox {
  events: Mutex<Vec<Event>>,
  alive: AtomicBool,
  waker: Box<dyn Wake>,
}

impl Inbox {
  pub fn new(waker: Box<dyn Wake>) -> Self {
    Self {
      events: Mutex::new(Vec::new()),
      alive: AtomicBool::new(true),
      waker,
    }
  }

  pub fn is_alive(&self) -> bool {
    self.alive.load(Ordering::Acquire)
  }

  /// Called when the owning JS environment goes away (a worker thread exiting).
  pub fn close(&self) {
    self.alive.store(false, Ordering::Release);
  }

  pub fn push(&self, event: Event) {
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

  /// Takes back the outcome of `req` if it is still waiting to be drained (its caller
  /// gave up after the request finished).
  pub fn take_settled(&self, req: RequestId) -> Option<Outcome> {
    let mut q = self.events.lock();
    let i = q
      .iter()
      .position(|e| matches!(e, Event::Settled(r, _) if *r == req))?;
    match q.remove(i) {
      Event::Settled(_, outcome) => Some(outcome),
      _ => None,
    }
  }
}
