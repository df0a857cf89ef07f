//! The in-memory backend.
//!
//! Every lock operation is a synchronous call on the caller's JS thread: an uncontended
//! lock or unlock is one hash-map operation under an uncontended mutex. Waiting uses a
//! FIFO queue per key with immediate handoff on release. The only thread besides the JS
//! threads is `timer`, which fires waiter deadlines and ttl expiries of held keys that
//! have waiters; it wakes JS threads through their `Inbox`.

mod inbox;
mod table;
mod timer;

pub use inbox::{Event, Inbox, Wake};
pub use table::{process_table, Acquire, Owner, Table};

use std::sync::atomic::{AtomicU64, Ordering};

/// Lock and waiter ids: unique for the life of the process and never reused, so a stale
/// handle can never match a later holder. A granted waiter keeps its id as holder id.
pub type Id = u64;

pub fn next_id() -> Id {
  static NEXT: AtomicU64 = AtomicU64::new(1);
  NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests;
