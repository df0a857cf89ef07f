//! Where a JS thread receives what happened while it was not calling us: grants and
//! timeouts decided by the timer thread or another worker thread, and the outcomes of
//! remote requests. Events that arrive together wake the thread once.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::exec::LocalExec;
use super::js_io::Io;

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

impl<W: Wake + ?Sized> Wake for std::sync::Arc<W> {
  fn wake(&self) {
    (**self).wake()
  }
}

pub struct Inbox {
  events: Mutex<Vec<Event>>,
  alive: AtomicBool,
  /// Events pushed while this thread's local tasks ran: the JS side drains them when the
  /// call returns (see `take_owed`), so they woke nothing.
  owed: AtomicBool,
  waker: Arc<dyn Wake>,
  /// The module instance's local tasks and the sockets the JS thread drives for them.
  pub exec: Arc<LocalExec>,
  pub io: Arc<Io>,
}

impl Inbox {
  pub fn new(waker: Box<dyn Wake>) -> Self {
    let waker: Arc<dyn Wake> = Arc::from(waker);
    Self {
      events: Mutex::new(Vec::new()),
      alive: AtomicBool::new(true),
      owed: AtomicBool::new(false),
      exec: LocalExec::new(waker.clone()),
      io: Arc::new(Io::new(waker.clone())),
      waker,
    }
  }

  /// Whether events were pushed without a wake-up since the last call (and clears it).
  pub fn take_owed(&self) -> bool {
    self.owed.swap(false, Ordering::AcqRel)
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
      if super::exec::running_here() {
        self.owed.store(true, Ordering::Release);
      } else {
        self.waker.wake();
      }
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
