//! The N-API surface. Everything here is synchronous and runs on the calling JS thread;
//! the only way back into JS from elsewhere is a context's weak wake-up function.
//!
//! Numbers cross as f64 (cheapest conversion): lock ids are below 2^53 for any realistic
//! process lifetime.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Backend, Scope};
use crate::error::Code;
use crate::memory::{process_table, Acquire, Event, Inbox, Owner, Table, Wake};

/// A weak threadsafe function: it wakes the JS thread but never keeps its loop alive.
struct TsfnWake(ThreadsafeFunction<(), (), (), Status, false, true>);

impl Wake for TsfnWake {
  fn wake(&self) {
    // NonBlocking never waits; a closing environment just drops the wake-up.
    let _ = self.0.call((), ThreadsafeFunctionCallMode::NonBlocking);
  }
}

/// The normalised configuration, for the JS layer.
#[napi(object)]
pub struct ParsedConfig {
  pub r#type: String,
  pub namespace: Option<String>,
  pub default_ttl: f64,
  pub retry: f64,
  pub delay: f64,
  /// Wait budget in ms for a contended lock; -1 means no limit.
  pub wait: f64,
  pub process_scope: bool,
}

/// Parses the JSON text of `create()`'s options (see `config.rs`).
#[napi(catch_unwind)]
pub fn parse_config(json: String) -> Result<ParsedConfig, Code> {
  let c = config::parse(&json)?;
  let Backend::InMemory(m) = &c.backend;
  Ok(ParsedConfig {
    r#type: c.backend.type_name().into(),
    namespace: c.namespace.clone(),
    default_ttl: c.default_ttl_ms,
    retry: m.retry as f64,
    delay: m.delay_ms,
    wait: m.wait().map_or(-1.0, |d| d.as_secs_f64() * 1000.0),
    process_scope: m.scope == Scope::Process,
  })
}

/// The public token of in-memory lock `id` (see `token.rs`).
#[napi(catch_unwind)]
pub fn token(id: f64) -> String {
  crate::token::token_hex(id as u64)
}

/// One per JS thread (module instance): receives events decided off this thread.
#[napi]
pub struct Context {
  inbox: Arc<Inbox>,
}

#[napi]
impl Context {
  /// `onWake` is called (on this thread) whenever `drain()` has something new.
  #[napi(constructor)]
  pub fn new(env: Env, on_wake: Function<(), ()>) -> Result<Self> {
    let tsfn = on_wake
      .build_threadsafe_function::<()>()
      .callee_handled::<false>()
      .weak::<true>()
      .build()?;
    let inbox = Arc::new(Inbox::new(Box::new(TsfnWake(tsfn))));
    // A worker thread that exits takes its locks and waiters out of the process table.
    env.add_env_cleanup_hook(inbox.clone(), |inbox| {
      inbox.close();
      process_table().remove_owners(|o| Arc::ptr_eq(&o.inbox, &inbox));
    })?;
    Ok(Context { inbox })
  }

  /// Pending events as a flat list: `[id, kind, id, kind, ...]`, kind 1 = granted,
  /// 2 = wait budget ran out.
  #[napi(catch_unwind)]
  pub fn drain(&self) -> Vec<f64> {
    let events = self.inbox.drain();
    let mut out = Vec::with_capacity(events.len() * 2);
    for e in events {
      match e {
        Event::Granted(id) => out.extend([id as f64, 1.0]),
        Event::TimedOut(id) => out.extend([id as f64, 2.0]),
      }
    }
    out
  }
}

/// The native half of a lock manager (in-memory backend).
#[napi]
pub struct Manager {
  table: Arc<Table>,
  owner: Owner,
  shared: bool,
}

fn millis(ms: f64) -> Duration {
  // The JS layer validated the range; `as` saturates, so nothing here can panic.
  Duration::from_millis(ms as u64)
}

#[napi]
impl Manager {
  #[napi(constructor)]
  pub fn new(ctx: &Context, process_scope: bool) -> Self {
    let table = if process_scope {
      process_table().clone()
    } else {
      Table::new()
    };
    Manager {
      table,
      owner: Owner {
        inbox: ctx.inbox.clone(),
        manager: crate::memory::next_id_pub(),
      },
      shared: process_scope,
    }
  }

  /// Returns the holder id (> 0), 0 when busy and `waitMs` is 0, or `-waiterId` when
  /// queued. `waitMs < 0` waits without limit.
  #[napi(catch_unwind)]
  pub fn acquire(&self, key: String, ttl_ms: f64, wait_ms: f64) -> Result<f64, Code> {
    let wait = (wait_ms >= 0.0).then(|| millis(wait_ms));
    match self.table.acquire(key, millis(ttl_ms), wait, &self.owner) {
      Acquire::Granted(id) => Ok(id as f64),
      Acquire::Busy => Ok(0.0),
      Acquire::Queued(id) => Ok(-(id as f64)),
      Acquire::Destroyed => Err(napi::Error::new(
        Code::Destroyed,
        "the lock manager was destroyed",
      )),
    }
  }

  /// Releases the lock if `id` still holds it. Returns the id of a waiter of this thread
  /// that now holds the key (to resolve at once), else 0.
  #[napi(catch_unwind)]
  pub fn release(&self, key: String, id: f64) -> f64 {
    self
      .table
      .release(&key, id as u64, &self.owner.inbox)
      .map_or(0.0, |g| g as f64)
  }

  #[napi(catch_unwind)]
  pub fn extend(&self, key: String, id: f64, ttl_ms: f64) -> bool {
    self.table.extend(&key, id as u64, millis(ttl_ms))
  }

  #[napi(catch_unwind)]
  pub fn cancel(&self, key: String, id: f64) -> bool {
    self.table.cancel(&key, id as u64)
  }

  #[napi(catch_unwind)]
  pub fn is_locked(&self, key: String) -> bool {
    self.table.is_locked(&key)
  }

  /// Keys with state in this manager's table (held or awaited).
  #[napi(catch_unwind)]
  pub fn key_count(&self) -> f64 {
    self.table.key_count() as f64
  }

  /// Drops this manager's locks and waiters; in a shared table its keys pass to others.
  #[napi(catch_unwind)]
  pub fn destroy(&self) {
    if self.shared {
      let me = self.owner.manager;
      self.table.remove_owners(|o| o.manager == me);
    } else {
      self.table.destroy();
    }
  }
}
