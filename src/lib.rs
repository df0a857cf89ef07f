#![deny(clippy::all)]
//! oxlock: keyed locks for Node.js.
//!
//! The crate is split by responsibility: `config` parses what users pass to `create()`,
//! `error` holds the stable error codes, `token` derives lock tokens, `memory` is the
//! in-memory backend (lock table, waiter queues, deadline timer), `redis` the Redlock
//! backend (with `runtime`, its I/O threads), and `bindings` is the only module that
//! knows about N-API.

pub mod config;
pub mod error;
pub mod key;
pub mod memory;
pub mod redis;
pub mod runtime;
pub mod token;

mod bindings;

// glibc malloc was a fifth of the I/O thread's time under load; mimalloc with
// local_dynamic_tls is the allocator node-rs uses inside dlopen'ed addons.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
