//! The in-memory backend.
//!
//! Every lock operation is a synchronous call on the caller's JS thread: an uncontended
//! lock or unlock is one hash-map operation under an uncontended mutex. Waiting uses a
//! FIFO queue per key with immediate handoff on release. The only thread besides the JS
//! threads is `timer`, which fires waiter deadlines and ttl expiries of held keys that
//! have waiters; it wakes JS threads through their `Inbox`.

mod key_state;
mod table;
mod timer;

pub use key_state::Owner;
pub use table::{process_table, Acquire, Table};
pub use timer::start as start_timer;

#[cfg(test)]
mod tests;
