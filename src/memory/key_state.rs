//! One key's state in the lock table: its holder, its FIFO queue of waiters, and the owner
//! (JS thread and manager) each belongs to.

use hashbrown::HashMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::timer;
use crate::core::{Event, Inbox, ManagerId, WaiterId};

/// Who a holder or waiter belongs to: the JS thread to notify and the manager, so that a
/// destroyed manager can take exactly its own locks and waiters out of a shared table.
#[derive(Clone)]
pub struct Owner {
  pub inbox: Arc<Inbox>,
  pub manager: ManagerId,
}

/// When each key with waiters must be looked at next (the table's timer entries).
pub(super) type DueMap = BTreeMap<(Instant, u64), Arc<[u8]>>;

/// A holder's or waiter's ticket: a `LockId` or `WaiterId` as a number. A granted waiter
/// keeps its ticket, so tickets of one key grow in arrival order.
pub(super) type Ticket = u64;

pub(super) struct Holder {
  pub(super) id: Ticket,
  pub(super) expires: Instant,
  pub(super) owner: Owner,
}

pub(super) struct Waiter {
  pub(super) ttl: Duration,
  pub(super) deadline: Option<Instant>,
  pub(super) owner: Owner,
}

pub(super) struct KeyState {
  pub(super) holder: Option<Holder>,
  /// Ids grow monotonically, so id order is arrival order: a FIFO with O(log n) removal
  /// of an aborted or timed-out waiter from anywhere in the queue.
  pub(super) waiters: BTreeMap<Ticket, Waiter>,
  /// This key's one entry in the table's timer map: when to look at the key again
  /// (holder expiry or a waiter's deadline). Only keys with waiters need one. It is kept
  /// lazily: moved earlier when needed, never later; a check that finds nothing due
  /// simply re-arms.
  pub(super) check: Option<(Instant, u64)>,
  /// Waiter deadlines are non-decreasing in queue order (one wait budget, the usual
  /// case), so the earliest deadline is the queue head's and timeouts leave from the front.
  pub(super) ordered: bool,
}

impl KeyState {
  pub(super) fn held(id: Ticket, expires: Instant, owner: &Owner) -> Self {
    KeyState {
      holder: Some(Holder {
        id,
        expires,
        owner: owner.clone(),
      }),
      waiters: BTreeMap::new(),
      check: None,
      ordered: true,
    }
  }

  fn earliest_deadline(&self) -> Option<Instant> {
    if self.ordered {
      // No deadline sorts last, so a head without one means nobody has one.
      self.waiters.first_key_value().and_then(|(_, w)| w.deadline)
    } else {
      self.waiters.values().filter_map(|w| w.deadline).min()
    }
  }

  /// When this key must be looked at next: only while someone waits.
  pub(super) fn next_check(&self) -> Option<Instant> {
    if self.waiters.is_empty() {
      return None;
    }
    let expiry = self.holder.as_ref().map(|h| h.expires);
    match (expiry, self.earliest_deadline()) {
      (Some(a), Some(b)) => Some(a.min(b)),
      (a, b) => a.or(b),
    }
  }

  pub(super) fn push_waiter(&mut self, id: Ticket, waiter: Waiter) {
    if let Some((_, last)) = self.waiters.last_key_value() {
      // No deadline sorts after every deadline.
      let in_order = match (last.deadline, waiter.deadline) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => a <= b,
      };
      self.ordered &= in_order;
    } else {
      self.ordered = true;
    }
    self.waiters.insert(id, waiter);
  }

  /// Removes the waiters whose budget ran out, and returns them.
  pub(super) fn take_timed_out(&mut self, now: Instant) -> Vec<(Ticket, Waiter)> {
    let mut out = Vec::new();
    if self.ordered {
      while let Some(entry) = self.waiters.first_entry() {
        if entry.get().deadline.is_some_and(|d| d <= now) {
          out.push(entry.remove_entry());
        } else {
          break;
        }
      }
    } else {
      let due: Vec<Ticket> = (self.waiters.iter())
        .filter(|(_, w)| w.deadline.is_some_and(|d| d <= now))
        .map(|(id, _)| *id)
        .collect();
      for id in due {
        if let Some(w) = self.waiters.remove(&id) {
          out.push((id, w));
        }
      }
    }
    out
  }
}

/// Moves the key's timer entry earlier if its state now needs an earlier look.
pub(super) fn schedule_check(key: &Arc<[u8]>, st: &mut KeyState, due: &mut DueMap) {
  let Some(want) = st.next_check() else {
    return;
  };
  if st.check.is_some_and(|(at, _)| at <= want) {
    return;
  }
  if let Some(old) = st.check.take() {
    due.remove(&old);
  }
  let at = (want, timer::next_seq());
  due.insert(at, key.clone());
  st.check = Some(at);
}

/// Takes the holder out (expired or gone): its id stops matching anything.
pub(super) fn drop_holder(st: &mut KeyState, ids: &mut HashMap<Ticket, Arc<[u8]>>) {
  if let Some(old) = st.holder.take() {
    ids.remove(&old.id);
  }
}

/// Gives the key to the first waiter whose thread is still alive; returns whom to notify.
/// The waiter's id becomes the holder id (its `ids` entry stays as it is).
pub(super) fn hand_off(
  st: &mut KeyState,
  ids: &mut HashMap<Ticket, Arc<[u8]>>,
  now: Instant,
) -> Option<(Arc<Inbox>, Event)> {
  while let Some((id, w)) = st.waiters.pop_first() {
    if !w.owner.inbox.is_alive() {
      ids.remove(&id);
      continue;
    }
    let inbox = w.owner.inbox.clone();
    st.holder = Some(Holder {
      id,
      expires: now + w.ttl,
      owner: w.owner,
    });
    return Some((inbox, Event::Granted(WaiterId::from_raw(id))));
  }
  None
}
