//! Locks on a store in another process (Redis, PostgreSQL). A store
//! implements `Store`: one attempt at a time, on one key. `RemoteManager` does everything
//! else once for every store: the local FIFO queue per key, handing a key to the next local
//! caller, retries, cancellation, watching leases expire, and delivering outcomes to the
//! JS thread's inbox.

mod expiry;
mod gate;
mod health;
mod lock;
mod lock_all;
mod manager;
mod resources;
mod retry;
mod store;
mod watch;

pub use health::{Health, Reporter, StoreEvent};
pub use manager::{RemoteApi, RemoteManager};
pub use resources::Resources;
pub use store::{Attempt, Store, Validity, FAIR_COURTESY, FAIR_HANDOFFS};
pub use watch::{KeyWatch, WatchState};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
