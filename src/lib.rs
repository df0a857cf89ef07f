#![deny(clippy::all)]
//! oxlock: keyed locks for Node.js. The layers, from the bottom (see ARCHITECTURE.md):
//! `core` (ids, inbox, clock, tokens, errors, runtime), `config` (every option, parsed
//! once), `memory` (the in-memory lock table), `remote` (the manager every remote store
//! shares, and the `Store` trait), `redis` (the Redis store), and `napi`, the only module
//! that knows about N-API.

pub mod admin;
pub mod compat;
pub mod config;
pub mod core;
pub mod memory;
pub mod mongo;
pub mod postgres;
pub mod redis;
pub mod remote;

// In `cargo test` builds the #[napi] exports are not registered, so nothing reaches them.
#[cfg_attr(test, allow(dead_code))]
mod napi;

// glibc malloc was a fifth of the I/O thread's time under load; mimalloc with
// local_dynamic_tls is the allocator node-rs uses inside dlopen'ed addons.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
