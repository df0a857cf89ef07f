//! distributed-locks' storages: `set(key, value, ttl)` takes a key only when nobody holds it
//! (or its holder's ttl ran out), `unSet(key, value)` frees it only while it holds `value`.
//! Each keeps the layout of the upstream storage package, so old and new processes share it.

pub mod mongo;
pub mod postgres;
pub mod redis;
