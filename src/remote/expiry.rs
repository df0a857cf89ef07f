//! When a manager's held locks run out on the store: one ordered set of (expiry, lock) and
//! one task that sleeps until the first of them, for every lock of the manager. A task and
//! a timer of its own per lock cost a spawn, a timer registration and an abort per cycle;
//! here a lock costs an insert and a remove, and the watcher is woken only when a lock
//! expires before the time it sleeps until (not in a steady stream of equal ttls, nor for
//! one sequential lock after another). An entry of a lock that is gone leaves the timer as
//! it is: it can only fire early, never late.

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

use super::manager::RemoteManager;
use super::Store;
use crate::core::{Event, LockId, Signal, Task};

/// The locks to look at, by when their lease on the store ends.
#[derive(Default)]
pub(super) struct Expiries {
  due: Mutex<Due>,
  /// A lock now expires before the time the watcher sleeps until.
  earlier: Notify,
  /// The watcher, started with the first lock.
  watcher: Mutex<Option<Task>>,
}

#[derive(Default)]
struct Due {
  set: BTreeSet<(Instant, LockId)>,
  /// When the watcher's timer fires; None while it sleeps without one (or has not slept).
  armed: Option<Instant>,
}

/// A held lock's place in its manager's `Expiries`, taken out when the lock is dropped.
pub(super) struct Entry {
  set: Arc<Expiries>,
  at: Instant,
  lock: LockId,
}

impl Expiries {
  /// Files `lock` under `at`; `start` spawns the watcher if there is none yet.
  pub fn add(self: &Arc<Self>, at: Instant, lock: LockId, start: impl FnOnce() -> Task) -> Entry {
    let sooner = {
      let mut due = self.due.lock();
      due.set.insert((at, lock));
      due.armed.is_none_or(|t| at < t)
    };
    if sooner {
      let mut watcher = self.watcher.lock();
      if watcher.is_none() {
        *watcher = Some(start());
      } else {
        self.earlier.notify_one();
      }
    }
    Entry {
      set: self.clone(),
      at,
      lock,
    }
  }

  /// Takes out every entry due at `now`.
  pub fn take_due(&self, now: Instant) -> Vec<LockId> {
    let mut due = self.due.lock();
    let later = due.set.split_off(&(now, LockId::from_raw(u64::MAX)));
    let taken = std::mem::replace(&mut due.set, later);
    taken.into_iter().map(|(_, lock)| lock).collect()
  }

  /// When the first entry is due, if any: the watcher's timer is set to that now.
  pub fn arm(&self) -> Option<Instant> {
    let mut due = self.due.lock();
    due.armed = due.set.first().map(|&(at, _)| at);
    due.armed
  }

  /// Notified when a lock is filed that is due before the armed time.
  pub fn earlier(&self) -> &Notify {
    &self.earlier
  }

  /// Stops the watcher (the manager is going away).
  pub fn stop(&self) {
    if let Some(t) = self.watcher.lock().take() {
      t.abort();
    }
  }
}

impl Entry {
  /// Files the lock again under `at` (it was extended).
  pub fn refile(&mut self, at: Instant) {
    let mut due = self.set.due.lock();
    due.set.remove(&(self.at, self.lock));
    due.set.insert((at, self.lock));
    self.at = at;
  }
}

impl Drop for Entry {
  fn drop(&mut self) {
    self.set.due.lock().set.remove(&(self.at, self.lock));
  }
}

impl<S: Store> RemoteManager<S> {
  /// The manager's expiry watcher: once a lock that nobody unlocked is gone from the
  /// store, the `lost` event, and its gate opens. It looks at once when it starts and when
  /// a lock is filed before every other (a wake-up on this thread, no timer), and sleeps
  /// until the first expiry.
  pub(super) fn watch_expiries(&self) -> Task {
    let (me, set) = (self.me.clone(), self.expiries.clone());
    self.spawner.spawn(async move {
      loop {
        let Some(m) = me.upgrade() else { break };
        let now = Instant::now();
        for lock in set.take_due(now) {
          let mut held = m.held.lock();
          let Some(h) = held.get_mut(&lock) else {
            continue; // unlocked: that path opened the gate
          };
          if h.expires_at > now {
            let at = h.expires_at;
            h.expiry.refile(at); // extended
            continue;
          }
          let keys = h.keys.clone();
          held.remove(&lock);
          drop(held);
          // Held, never unlocked, and now gone from the store: the `lost` event (one per
          // key of a multi-resource lock).
          for key in keys.keys() {
            m.gates.leave(key, None);
            m.inbox.push(Event::Signal(Signal {
              source: m.id,
              name: "lost",
              key: String::from_utf8_lossy(key).into_owned(),
              error: None,
            }));
          }
        }
        let next = set.arm();
        drop(m);
        let earlier = set.earlier().notified();
        match next {
          Some(at) => {
            tokio::select! {
              _ = tokio::time::sleep_until(at.into()) => {}
              _ = earlier => {}
            }
          }
          None => earlier.await,
        }
      }
    })
  }
}

impl<S: Store> Drop for RemoteManager<S> {
  // The watcher holds the expiries, which hold the watcher: stopped here, it lets go.
  fn drop(&mut self) {
    self.expiries.stop();
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use futures_util::FutureExt;
  use std::time::Duration;

  #[test]
  fn entries_come_out_when_due_and_leave_when_dropped() {
    let set = Arc::new(Expiries::default());
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let (a, b, c) = (LockId::next(), LockId::next(), LockId::next());
    let mut started = 0;
    let ea = set.add(ms(30), a, || {
      started += 1;
      crate::core::Spawner::Runtime.spawn(async {})
    });
    let eb = set.add(ms(10), b, || unreachable!("started once"));
    let mut ec = set.add(ms(20), c, || unreachable!("started once"));
    assert_eq!(started, 1);
    assert_eq!(set.arm(), Some(ms(10)));
    drop(eb);
    assert_eq!(set.arm(), Some(ms(20)));
    ec.refile(ms(40));
    assert_eq!(set.take_due(ms(30)), vec![a]);
    assert_eq!(set.arm(), Some(ms(40)));
    drop(ea); // taken out already: nothing to remove
    assert_eq!(set.take_due(ms(39)), vec![]);
    // Armed for 40 ms: a lock due later does not wake the watcher, one due sooner does.
    let woken = || set.earlier().notified().now_or_never().is_some();
    woken(); // the permit of b's notification
    let _ed = set.add(ms(50), LockId::next(), || unreachable!("started once"));
    assert!(!woken(), "woken for a lock due after the armed time");
    let ee = set.add(ms(35), LockId::next(), || unreachable!("started once"));
    assert!(woken(), "not woken for a lock due before the armed time");
    drop((ec, ee));
    assert_eq!(set.arm(), Some(ms(50)));
  }
}
