//! The Redis backend: Redlock over one or N independent masters, wire-compatible with
//! node-redlock (see `scripts.rs`).

mod manager;
mod node;
mod redlock;
mod scripts;

pub use manager::{Outcome, RedisManager};
pub use redlock::Failure;
