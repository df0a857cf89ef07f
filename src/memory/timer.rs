//! One process-wide thread that fires table deadlines (waiter budgets, ttl expiry of held
//! keys with waiters). It sleeps until the earliest deadline; tables schedule themselves
//! with their earliest deadline, so the thread holds one entry per table, not per waiter.
//! A native thread never keeps the Node event loop alive.

use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use super::Table;

struct Service {
  due: Mutex<BTreeMap<(Instant, u64), Weak<Table>>>,
  changed: Condvar,
}

static SERVICE: OnceLock<&'static Service> = OnceLock::new();

/// Starts the timer thread (once per process). Called when the module loads, so that
/// scheduling, which runs under a table's mutex, never has to spawn or fail.
pub fn start() -> std::io::Result<()> {
  if SERVICE.get().is_some() {
    return Ok(());
  }
  let s: &'static Service = Box::leak(Box::new(Service {
    due: Mutex::new(BTreeMap::new()),
    changed: Condvar::new(),
  }));
  if SERVICE.set(s).is_ok() {
    std::thread::Builder::new()
      .name("oxlock-timer".into())
      .stack_size(256 * 1024)
      .spawn(move || run(s))?;
  }
  Ok(())
}

/// Tie-breakers for entries due at the same instant.
pub(crate) fn next_seq() -> u64 {
  static NEXT: AtomicU64 = AtomicU64::new(1);
  NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Asks for `table.on_timer()` to run at `at` (or soon after).
pub(crate) fn schedule(at: Instant, table: Weak<Table>) {
  let Some(s) = SERVICE.get() else {
    return; // not started: only in unit tests that never wait for a deadline
  };
  let seq = next_seq();
  let mut due = s.due.lock();
  let earliest = due.first_key_value().is_none_or(|((t, _), _)| at < *t);
  due.insert((at, seq), table);
  if earliest {
    s.changed.notify_one();
  }
}

fn run(s: &'static Service) {
  let mut due = s.due.lock();
  loop {
    let now = Instant::now();
    match due.first_key_value().map(|((t, _), _)| *t) {
      None => s.changed.wait(&mut due),
      Some(t) if t > now => {
        s.changed.wait_until(&mut due, t);
      }
      Some(_) => {
        let Some((_, table)) = due.pop_first() else {
          continue;
        };
        // Run the table without holding our lock: it may schedule itself again.
        if let Some(table) = table.upgrade() {
          drop(due);
          run_guarded(&table);
          due = s.due.lock();
        }
      }
    }
  }
}

fn run_guarded(table: &Arc<Table>) {
  // A panic must not take the timer down with it (every later deadline would be lost).
  let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| table.on_timer()));
}
