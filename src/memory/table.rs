//! The lock table: one entry per key that is held or awaited (idle keys cost nothing),
//! each with its holder and a FIFO queue of waiters.

use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::inbox::{Event, Inbox};
use super::{next_id, timer, Id};

/// Who a holder or waiter belongs to: the JS thread to notify and the manager, so that a
/// destroyed manager can take exactly its own locks and waiters out of a shared table.
#[derive(Clone)]
pub struct Owner {
  pub inbox: Arc<Inbox>,
  pub manager: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
  Granted(Id),
  /// Held by someone else and the caller may not wait.
  Busy,
  /// In the queue; the outcome arrives as an `Event` (or inline from `release`).
  Queued(Id),
  Destroyed,
}

struct Holder {
  id: Id,
  expires: Instant,
  owner: Owner,
  /// When set, a `Due::Expiry` entry exists for this holder (only while waiters exist).
  expiry_due: Option<Instant>,
}

struct Waiter {
  ttl: Duration,
  deadline: Option<Instant>,
  owner: Owner,
}

struct KeyState {
  holder: Option<Holder>,
  /// Ids grow monotonically, so id order is arrival order: a FIFO with O(log n) removal
  /// of an aborted or timed-out waiter from anywhere in the queue.
  waiters: BTreeMap<Id, Waiter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
  WaiterBudget,
  Expiry,
}

type Notices = Vec<(Arc<Inbox>, Event)>;

struct Inner {
  keys: HashMap<String, KeyState>,
  due: BTreeMap<(Instant, Id, Due), String>,
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
    key: String,
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
      let Inner { keys, due, .. } = inner;
      let result = match keys.entry(key) {
        hashbrown::hash_map::Entry::Vacant(v) => {
          let id = next_id();
          v.insert(KeyState {
            holder: Some(Holder {
              id,
              expires: now + ttl,
              owner: owner.clone(),
              expiry_due: None,
            }),
            waiters: BTreeMap::new(),
          });
          Acquire::Granted(id)
        }
        hashbrown::hash_map::Entry::Occupied(mut o) => {
          let key = o.key().clone();
          let st = o.get_mut();
          if st.holder.as_ref().is_some_and(|h| h.expires <= now) {
            // The holder's ttl ran out and the timer has not handed the key on yet.
            let old = st.holder.take().expect("checked");
            if let Some(at) = old.expiry_due {
              due.remove(&(at, old.id, Due::Expiry));
            }
            if let Some(g) = hand_off(&key, st, due, now) {
              notices.push(g);
            }
          }
          match &mut st.holder {
            None => {
              let id = next_id();
              st.holder = Some(Holder {
                id,
                expires: now + ttl,
                owner: owner.clone(),
                expiry_due: None,
              });
              Acquire::Granted(id)
            }
            Some(_) if wait == Some(Duration::ZERO) => Acquire::Busy,
            Some(holder) => {
              let id = next_id();
              let deadline = wait.and_then(|w| now.checked_add(w));
              if let Some(at) = deadline {
                due.insert((at, id, Due::WaiterBudget), key.clone());
              }
              if holder.expiry_due.is_none() {
                // Someone waits now: hand the key on when the holder's ttl runs out.
                due.insert((holder.expires, holder.id, Due::Expiry), key);
                holder.expiry_due = Some(holder.expires);
              }
              st.waiters.insert(
                id,
                Waiter {
                  ttl,
                  deadline,
                  owner: owner.clone(),
                },
              );
              Acquire::Queued(id)
            }
          }
        }
      };
      if keys.len() >= inner.sweep_at {
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

  /// Releases `key` if `id` still holds it. Returns the id of the waiter that now holds
  /// it when that waiter belongs to `caller`'s thread (it is resolved inline, with no
  /// wake-up); a waiter on another thread is notified through its inbox.
  pub fn release(&self, key: &str, id: Id, caller: &Arc<Inbox>) -> Option<Id> {
    let granted = {
      let mut guard = self.inner.lock();
      let inner = &mut *guard;
      let Inner { keys, due, .. } = inner;
      let EntryRef::Occupied(mut o) = keys.entry_ref(key) else {
        return None;
      };
      let st = o.get_mut();
      if st.holder.as_ref().is_none_or(|h| h.id != id) {
        // Expired and taken over, or released already: never touch someone else's lock.
        return None;
      }
      let old = st.holder.take().expect("checked");
      if let Some(at) = old.expiry_due {
        due.remove(&(at, old.id, Due::Expiry));
      }
      if st.waiters.is_empty() {
        o.remove();
        return None;
      }
      let granted = hand_off(key, st, due, Instant::now());
      if st.holder.is_none() {
        o.remove();
      }
      self.rearm(inner);
      granted
    };
    match granted {
      Some((inbox, Event::Granted(gid))) if Arc::ptr_eq(&inbox, caller) => Some(gid),
      Some(notice) => {
        dispatch(vec![notice]);
        None
      }
      None => None,
    }
  }

  /// Makes the lock held by `id` expire `ttl` from now. False if `id` no longer holds it.
  pub fn extend(&self, key: &str, id: Id, ttl: Duration) -> bool {
    let now = Instant::now();
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    let Inner { keys, due, .. } = inner;
    let Some(st) = keys.get_mut(key) else {
      return false;
    };
    let Some(holder) = st.holder.as_mut().filter(|h| h.id == id && h.expires > now) else {
      return false;
    };
    holder.expires = now + ttl;
    if let Some(at) = holder.expiry_due.take() {
      due.remove(&(at, id, Due::Expiry));
    }
    if !st.waiters.is_empty() {
      due.insert((holder.expires, id, Due::Expiry), key.to_owned());
      holder.expiry_due = Some(holder.expires);
      self.rearm(inner);
    }
    true
  }

  /// Takes a waiter out of the queue (abort). False if it is no longer queued.
  pub fn cancel(&self, key: &str, id: Id) -> bool {
    let mut guard = self.inner.lock();
    let Inner { keys, due, .. } = &mut *guard;
    let Some(w) = keys.get_mut(key).and_then(|st| st.waiters.remove(&id)) else {
      return false;
    };
    if let Some(at) = w.deadline {
      due.remove(&(at, id, Due::WaiterBudget));
    }
    true
  }

  /// Whether `key` is held right now (an expired holder does not count).
  pub fn is_locked(&self, key: &str) -> bool {
    let now = Instant::now();
    let guard = self.inner.lock();
    guard
      .keys
      .get(key)
      .and_then(|st| st.holder.as_ref())
      .is_some_and(|h| h.expires > now)
  }

  /// Number of keys with state (held, possibly expired, or awaited): for tests and stats.
  pub fn key_count(&self) -> usize {
    self.inner.lock().keys.len()
  }

  /// Destroys a table that belongs to one manager: every later `acquire` is refused.
  pub fn destroy(&self) {
    let mut guard = self.inner.lock();
    guard.destroyed = true;
    guard.keys = HashMap::new();
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
      let Inner { keys, due, .. } = inner;
      keys.retain(|key, st| {
        st.waiters.retain(|id, w| {
          let keep = !gone(&w.owner);
          if !keep {
            if let Some(at) = w.deadline {
              due.remove(&(at, *id, Due::WaiterBudget));
            }
          }
          keep
        });
        if st.holder.as_ref().is_some_and(|h| gone(&h.owner)) {
          let old = st.holder.take().expect("checked");
          if let Some(at) = old.expiry_due {
            due.remove(&(at, old.id, Due::Expiry));
          }
          if let Some(g) = hand_off(key, st, due, now) {
            notices.push(g);
          }
        }
        st.holder.is_some()
      });
      self.rearm(inner);
    }
    dispatch(notices);
  }

  /// Called by the timer thread: fires every deadline that is due.
  pub(crate) fn on_timer(&self) {
    let now = Instant::now();
    let mut notices = Notices::new();
    {
      let mut guard = self.inner.lock();
      let inner = &mut *guard;
      if inner.armed_at.is_some_and(|at| at <= now) {
        inner.armed_at = None;
      }
      let Inner { keys, due, .. } = inner;
      while let Some(entry) = due.first_entry() {
        if entry.key().0 > now {
          break;
        }
        let ((_, id, kind), key) = entry.remove_entry();
        let EntryRef::Occupied(mut o) = keys.entry_ref(key.as_str()) else {
          continue;
        };
        let st = o.get_mut();
        match kind {
          Due::WaiterBudget => {
            if let Some(w) = st.waiters.remove(&id) {
              notices.push((w.owner.inbox, Event::TimedOut(id)));
            }
          }
          Due::Expiry => {
            let Some(holder) = st.holder.as_mut().filter(|h| h.id == id) else {
              continue;
            };
            if holder.expires > now {
              // Extended meanwhile without the entry moving (cannot happen; stay safe).
              due.insert((holder.expires, id, Due::Expiry), key.clone());
              holder.expiry_due = Some(holder.expires);
              continue;
            }
            st.holder = None;
            if let Some(g) = hand_off(&key, st, due, now) {
              notices.push(g);
            }
            if st.holder.is_none() {
              o.remove();
            }
          }
        }
      }
      self.rearm(inner);
    }
    dispatch(notices);
  }

  fn rearm(&self, inner: &mut Inner) {
    if let Some(&(first, _, _)) = inner.due.first_key_value().map(|(k, _)| k) {
      if inner.armed_at.is_none_or(|at| first < at) {
        inner.armed_at = Some(first);
        timer::schedule(first, self.me.clone());
      }
    }
  }
}

impl Inner {
  fn sweep(&mut self, now: Instant) {
    self.keys.retain(|_, st| {
      !st.waiters.is_empty() || st.holder.as_ref().is_some_and(|h| h.expires > now)
    });
    self.sweep_at = (self.keys.len() * 2).max(MIN_SWEEP);
  }
}

/// Gives the key to the first waiter whose thread is still alive; returns whom to notify.
fn hand_off(
  key: &str,
  st: &mut KeyState,
  due: &mut BTreeMap<(Instant, Id, Due), String>,
  now: Instant,
) -> Option<(Arc<Inbox>, Event)> {
  while let Some((id, w)) = st.waiters.pop_first() {
    if let Some(at) = w.deadline {
      due.remove(&(at, id, Due::WaiterBudget));
    }
    if !w.owner.inbox.is_alive() {
      continue;
    }
    let expires = now + w.ttl;
    let expiry_due = (!st.waiters.is_empty()).then(|| {
      due.insert((expires, id, Due::Expiry), key.to_owned());
      expires
    });
    let inbox = w.owner.inbox.clone();
    st.holder = Some(Holder {
      id,
      expires,
      owner: w.owner,
      expiry_due,
    });
    return Some((inbox, Event::Granted(id)));
  }
  None
}

fn dispatch(notices: Notices) {
  for (inbox, event) in notices {
    inbox.push(event);
  }
}
