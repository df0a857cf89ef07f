//! The lock table: one entry per key that is held or awaited (idle keys cost nothing),
//! each with its holder and a FIFO queue of waiters. Keys are bytes: the bindings pass
//! WTF-8 (see `key.rs`), so two different JS strings are always two different keys.

use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::key_state::{
  drop_holder, hand_off, schedule_check, DueMap, Holder, KeyState, Owner, Ticket, Waiter,
};
use super::timer;
use crate::core::{Event, Inbox, LockId, WaiterId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
  Granted(LockId),
  /// Held by someone else and the caller may not wait.
  Busy,
  /// In the queue; the outcome arrives as an `Event` (or inline from `release`).
  Queued(WaiterId),
  Destroyed,
}

type Notices = Vec<(Arc<Inbox>, Event)>;

struct Inner {
  keys: HashMap<Arc<[u8]>, KeyState>,
  /// The key of every holder and waiter, so that unlock, extend and cancel need only the
  /// id: no string crosses from JS on those paths.
  ids: HashMap<Ticket, Arc<[u8]>>,
  due: DueMap,
  /// The earliest time the timer thread will call us back, if any.
  armed_at: Option<Instant>,
  /// Expired, unawaited holders are swept when the table has doubled since the last sweep.
  sweep_at: usize,
  destroyed: bool,
}

pub struct Table {
  inner: Mutex<Inner>,
  me: Weak<Table>,
}

const MIN_SWEEP: usize = 1024;

/// The table behind `scope: 'process'`, shared by every manager and worker thread.
pub fn process_table() -> &'static Arc<Table> {
  static TABLE: OnceLock<Arc<Table>> = OnceLock::new();
  TABLE.get_or_init(Table::new)
}

impl Table {
  pub fn new() -> Arc<Table> {
    Arc::new_cyclic(|me| Table {
      inner: Mutex::new(Inner {
        keys: HashMap::new(),
        ids: HashMap::new(),
        due: BTreeMap::new(),
        armed_at: None,
        sweep_at: MIN_SWEEP,
        destroyed: false,
      }),
      me: me.clone(),
    })
  }

  /// Takes `key` for `ttl`, or queues the caller for at most `wait` (`None`: no limit).
  pub fn acquire(
    &self,
    key: &[u8],
    ttl: Duration,
    wait: Option<Duration>,
    owner: &Owner,
  ) -> Acquire {
    let now = Instant::now();
    let mut notices = Notices::new();
    let result = {
      let mut guard = self.inner.lock();
      let inner = &mut *guard;
      if inner.destroyed {
        return Acquire::Destroyed;
      }
      let result = match inner.keys.entry_ref(key) {
        EntryRef::Vacant(v) => {
          let id = LockId::next().raw();
          let entry = v.insert_entry(KeyState::held(id, now + ttl, owner));
          inner.ids.insert(id, entry.key().clone());
          Acquire::Granted(LockId::from_raw(id))
        }
        EntryRef::Occupied(mut o) => {
          let key = o.key().clone();
          let st = o.get_mut();
          if st.holder.as_ref().is_some_and(|h| h.expires <= now) {
            // The holder's ttl ran out and the timer has not handed the key on yet.
            drop_holder(st, &mut inner.ids);
            notices.extend(hand_off(st, &mut inner.ids, now));
          }
          if st.holder.is_none() {
            let id = LockId::next().raw();
            st.holder = Some(Holder {
              id,
              expires: now + ttl,
              owner: owner.clone(),
            });
            inner.ids.insert(id, key);
            Acquire::Granted(LockId::from_raw(id))
          } else if wait == Some(Duration::ZERO) {
            Acquire::Busy
          } else {
            let id = WaiterId::next().raw();
            let waiter = Waiter {
              ttl,
              deadline: wait.and_then(|w| now.checked_add(w)),
              owner: owner.clone(),
            };
            st.push_waiter(id, waiter);
            schedule_check(&key, st, &mut inner.due);
            inner.ids.insert(id, key);
            Acquire::Queued(WaiterId::from_raw(id))
          }
        }
      };
      if inner.keys.len() >= inner.sweep_at {
        inner.sweep(now);
      }
      if matches!(result, Acquire::Queued(_)) || !notices.is_empty() {
        self.rearm(inner);
      }
      result
    };
    dispatch(notices);
    result
  }

  /// Releases the lock if `id` still holds it. Returns the id of the waiter that now holds
  /// the key when that waiter belongs to `caller`'s thread (it is resolved inline, with
  /// no wake-up); a waiter on another thread is notified through its inbox.
  pub fn release(&self, lock: LockId, caller: &Arc<Inbox>) -> Option<LockId> {
    let id = lock.raw();
    let granted = {
      let mut guard = self.inner.lock();
      let inner = &mut *guard;
      // Unknown id: expired and taken over, or released already. Never touch anyone else's.
      let key = inner.ids.remove(&id)?;
      let EntryRef::Occupied(mut o) = inner.keys.entry_ref(&*key) else {
        return None;
      };
      let st = o.get_mut();
      if st.holder.as_ref().is_none_or(|h| h.id != id) {
        // `id` is a waiter (cancel is the way out for those): put it back.
        inner.ids.insert(id, key);
        return None;
      }
      st.holder = None;
      if st.waiters.is_empty() {
        o.remove();
        return None;
      }
      let granted = hand_off(st, &mut inner.ids, Instant::now());
      if st.holder.is_none() {
        o.remove();
      } else {
        schedule_check(&key, st, &mut inner.due);
        self.rearm(inner);
      }
      granted
    };
    match granted {
      Some((inbox, Event::Granted(gid))) if Arc::ptr_eq(&inbox, caller) => Some(gid.granted()),
      Some(notice) => {
        dispatch(vec![notice]);
        None
      }
      None => None,
    }
  }

  /// Makes the lock held by `id` expire `ttl` from now. False if `id` no longer holds it.
  pub fn extend(&self, lock: LockId, ttl: Duration) -> bool {
    let id = lock.raw();
    let now = Instant::now();
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    let Some(key) = inner.ids.get(&id) else {
      return false;
    };
    let Some(st) = inner.keys.get_mut(&**key) else {
      return false;
    };
    let Some(h) = st.holder.as_mut().filter(|h| h.id == id && h.expires > now) else {
      return false;
    };
    h.expires = now + ttl;
    // A shorter ttl with waiters queued must hand the key on sooner.
    schedule_check(key, st, &mut inner.due);
    self.rearm(inner);
    true
  }

  /// Takes a waiter out of its queue (abort). False if it is no longer queued.
  pub fn cancel(&self, waiter: WaiterId) -> bool {
    let id = waiter.raw();
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    let Some(key) = inner.ids.get(&id) else {
      return false;
    };
    if inner
      .keys
      .get_mut(&**key)
      .and_then(|st| st.waiters.remove(&id))
      .is_none()
    {
      return false;
    }
    // Its deadline may be this key's next check; the check re-arms lazily when it fires.
    inner.ids.remove(&id);
    true
  }

  /// Whether `key` is held right now (an expired holder does not count).
  pub fn is_locked(&self, key: &[u8]) -> bool {
    let now = Instant::now();
    let guard = self.inner.lock();
    guard
      .keys
      .get(key)
      .and_then(|st| st.holder.as_ref())
      .is_some_and(|h| h.expires > now)
  }

  /// When the lock held by `id` expires, if `id` holds it.
  pub fn expires(&self, lock: LockId) -> Option<Instant> {
    let id = lock.raw();
    let guard = self.inner.lock();
    let key = guard.ids.get(&id)?;
    let h = guard.keys.get(&**key)?.holder.as_ref()?;
    (h.id == id).then_some(h.expires)
  }

  /// Keys held or awaited right now. Sweeps expired, unawaited keys first, which also
  /// frees their memory.
  pub fn key_count(&self) -> usize {
    let mut guard = self.inner.lock();
    guard.sweep(Instant::now());
    guard.keys.len()
  }

  /// Destroys a table that belongs to one manager: every later `acquire` is refused.
  pub fn destroy(&self) {
    let mut guard = self.inner.lock();
    guard.destroyed = true;
    guard.keys = HashMap::new();
    guard.ids = HashMap::new();
    guard.due = BTreeMap::new();
  }

  /// Removes the locks and waiters of the owners `gone` selects (a destroyed manager, an
  /// exited worker thread) from a shared table, handing their keys on to the others.
  /// Removed waiters are not notified: their owner is the one going away.
  pub fn remove_owners(&self, gone: impl Fn(&Owner) -> bool) {
    let now = Instant::now();
    let mut notices = Notices::new();
    {
      let mut guard = self.inner.lock();
      let inner = &mut *guard;
      let Inner { keys, ids, due, .. } = inner;
      keys.retain(|key, st| {
        st.waiters.retain(|id, w| {
          let keep = !gone(&w.owner);
          if !keep {
            ids.remove(id);
          }
          keep
        });
        if st.holder.as_ref().is_some_and(|h| gone(&h.owner)) {
          drop_holder(st, ids);
          notices.extend(hand_off(st, ids, now));
        }
        if st.holder.is_some() {
          schedule_check(key, st, due);
        }
        st.holder.is_some()
      });
      self.rearm(inner);
    }
    dispatch(notices);
  }

  /// Called by the timer thread: looks at every key whose check is due.
  pub(crate) fn on_timer(&self) {
    let now = Instant::now();
    let mut notices = Notices::new();
    {
      let mut guard = self.inner.lock();
      let inner = &mut *guard;
      if inner.armed_at.is_some_and(|at| at <= now) {
        inner.armed_at = None;
      }
      let Inner { keys, ids, due, .. } = inner;
      while let Some(entry) = due.first_entry() {
        if entry.key().0 > now {
          break;
        }
        let (at, key) = entry.remove_entry();
        let EntryRef::Occupied(mut o) = keys.entry_ref(&*key) else {
          continue;
        };
        let st = o.get_mut();
        if st.check != Some(at) {
          continue; // an entry of an earlier state of this key
        }
        st.check = None;
        for (id, w) in st.take_timed_out(now) {
          ids.remove(&id);
          notices.push((w.owner.inbox, Event::TimedOut(WaiterId::from_raw(id))));
        }
        if st.holder.as_ref().is_some_and(|h| h.expires <= now) && !st.waiters.is_empty() {
          drop_holder(st, ids);
          notices.extend(hand_off(st, ids, now));
        }
        if st.holder.is_none() {
          o.remove();
        } else {
          schedule_check(&key, st, due);
        }
      }
      self.rearm(inner);
    }
    dispatch(notices);
  }

  fn rearm(&self, inner: &mut Inner) {
    if let Some(&(first, _)) = inner.due.first_key_value().map(|(k, _)| k) {
      if inner.armed_at.is_none_or(|at| first < at) {
        inner.armed_at = Some(first);
        timer::schedule(first, self.me.clone());
      }
    }
  }
}

impl Inner {
  fn sweep(&mut self, now: Instant) {
    let ids = &mut self.ids;
    self.keys.retain(|_, st| {
      let keep = !st.waiters.is_empty() || st.holder.as_ref().is_some_and(|h| h.expires > now);
      if !keep {
        if let Some(h) = &st.holder {
          ids.remove(&h.id);
        }
      }
      keep
    });
    self.sweep_at = (self.keys.len() * 2).max(MIN_SWEEP);
  }
}

fn dispatch(notices: Notices) {
  for (inbox, event) in notices {
    inbox.push(event);
  }
}
