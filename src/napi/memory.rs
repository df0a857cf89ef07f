//! The in-memory face. Calling convention of the hot functions (`acquire`, `release`,
//! `extend`): measured on napi-rs 3, a plain function costs ~30 ns, every numeric argument
//! or result ~50 ns more, a class method ~400 ns. So the numbers go through the thread's
//! `Float64Array`, filled by JS before the call (`args[0]` = manager, `args[1]` = ttl or
//! lock id, `args[2]` = ttl), and only the key crosses as a real argument, once per lock.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;
use std::time::Duration;

use super::{destroyed, key, millis, not_initialized, with_local, Local, Manager};
use crate::config::{InMemoryConfig, Scope};
use crate::core::ErrorKind;
use crate::core::{clock, token, Inbox, LockId, ManagerId, WaiterId};
use crate::memory::{process_table, Acquire, Owner, Table};

pub struct MemoryManager {
  pub table: Arc<Table>,
  owner: Owner,
  wait: Option<Duration>,
  shared: bool,
}

impl MemoryManager {
  pub fn new(cfg: &InMemoryConfig, inbox: Arc<Inbox>) -> Self {
    let shared = cfg.scope == Scope::Process;
    MemoryManager {
      table: if shared {
        process_table().clone()
      } else {
        Table::new()
      },
      owner: Owner {
        inbox,
        manager: ManagerId::next(),
      },
      wait: cfg.wait(),
      shared,
    }
  }

  /// Drops the manager's locks and waiters; in the shared table its keys pass to others.
  pub fn destroy(self) {
    if self.shared {
      let me = self.owner.manager;
      self.table.remove_owners(|o| o.manager == me);
    } else {
      self.table.destroy();
    }
  }
}

fn memory(l: &Local, handle: f64) -> Option<&MemoryManager> {
  match l.managers.get(handle)? {
    Manager::Memory(m) => Some(m),
    Manager::Remote(_) | Manager::Face(_) => None,
  }
}

fn lock_id(v: f64) -> LockId {
  LockId::from_f64(v).unwrap_or(LockId::from_raw(0))
}

/// `args`: [manager, ttl]. Returns the lock id (> 0), 0 when busy and the manager may not
/// wait, or `-waiterId` when queued.
#[napi(catch_unwind)]
pub fn acquire(env: &Env, key: Unknown) -> Result<f64, ErrorKind> {
  let key = key::read(env, &key)?;
  with_local(|l, [manager, ttl, _]| {
    let m = memory(l, manager).ok_or_else(destroyed)?;
    match m.table.acquire(&key, millis(ttl), m.wait, &m.owner) {
      Acquire::Granted(id) => Ok(id.as_f64()),
      Acquire::Busy => Ok(0.0),
      Acquire::Queued(id) => Ok(-id.as_f64()),
      Acquire::Destroyed => Err(destroyed()),
    }
  })
  .ok_or_else(not_initialized)?
}

/// `args`: [manager, id]. Releases the lock if `id` still holds it; returns the id of a
/// waiter of this thread that now holds the key (to resolve at once), else 0.
#[napi(catch_unwind)]
pub fn release() -> f64 {
  with_local(|l, [manager, id, _]| {
    memory(l, manager)
      .and_then(|m| m.table.release(lock_id(id), &m.owner.inbox))
      .map_or(0.0, LockId::as_f64)
  })
  .unwrap_or(0.0)
}

/// `args`: [manager, id, ttl]. False if `id` no longer holds its lock.
#[napi(catch_unwind)]
pub fn extend() -> bool {
  with_local(|l, [manager, id, ttl]| {
    memory(l, manager).is_some_and(|m| m.table.extend(lock_id(id), millis(ttl)))
  })
  .unwrap_or(false)
}

/// When lock `id` expires, in epoch milliseconds; 0 if it is no longer held.
#[napi(catch_unwind)]
pub fn expiration(manager: f64, id: f64) -> f64 {
  with_local(|l, _| memory(l, manager).and_then(|m| m.table.expires(lock_id(id))))
    .flatten()
    .map_or(0.0, clock::epoch_ms)
}

/// Takes waiter `id` out of its queue. False if it is no longer queued.
#[napi(catch_unwind)]
pub fn cancel(manager: f64, id: f64) -> bool {
  let Some(w) = WaiterId::from_f64(id) else {
    return false;
  };
  with_local(|l, _| memory(l, manager).is_some_and(|m| m.table.cancel(w))).unwrap_or(false)
}

/// The public token of in-memory lock `id` (see `core::token`).
#[napi(catch_unwind)]
pub fn token(id: f64) -> String {
  token::token_hex(lock_id(id).raw())
}
