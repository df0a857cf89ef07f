//! The N-API surface. Everything here is synchronous and runs on the calling JS thread;
//! the only way back into JS from elsewhere is the thread's weak wake-up function.
//!
//! Calling convention of the hot functions (`acquire`, `release`, `extend`): measured on
//! napi-rs 3, a plain function costs ~30 ns, every numeric argument or result ~50 ns more,
//! a class method ~400 ns. So the numbers go through a per-thread `Float64Array` that JS
//! fills before the call (`args[0]` = manager, `args[1]` = ttl or lock id, `args[2]` = ttl),
//! and only the key crosses as a real argument, once per lock.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Backend, Scope};
use crate::error::Code;
use crate::memory::{next_id, process_table, Acquire, Event, Inbox, Owner, Table, Wake};
use crate::redis::{Failure, Outcome, RedisManager};

/// A weak threadsafe function: it wakes the JS thread but never keeps its loop alive.
struct TsfnWake(ThreadsafeFunction<(), (), (), Status, false, true>);

impl Wake for TsfnWake {
  fn wake(&self) {
    // NonBlocking never waits; a closing environment just drops the wake-up.
    let _ = self.0.call((), ThreadsafeFunctionCallMode::NonBlocking);
  }
}

struct ManagerSlot {
  table: Arc<Table>,
  owner: Owner,
  wait: Option<Duration>,
  shared: bool,
}

/// What one JS thread has: the argument array, one inbox per module instance loaded on
/// the thread (a test runner may load the module once per vm context), and the managers
/// (by index; never reused, so a stale handle cannot reach a newer manager).
struct Local {
  args: Float64Array,
  inboxes: Vec<Arc<Inbox>>,
  managers: Vec<Option<ManagerSlot>>,
  redis: Vec<Option<Arc<RedisManager>>>,
}

thread_local! {
  static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

fn not_initialized() -> napi::Error<Code> {
  napi::Error::new(
    Code::Napi(Status::GenericFailure),
    "oxlock: init() was not called on this thread",
  )
}

fn destroyed() -> napi::Error<Code> {
  napi::Error::new(Code::Destroyed, "the lock manager was destroyed")
}

/// Runs `f` with this thread's state and its argument array.
fn with_local<R>(f: impl FnOnce(&mut Local, [f64; 3]) -> R) -> Option<R> {
  LOCAL.with_borrow_mut(|l| {
    let l = l.as_mut()?;
    let a = l.args.as_ref();
    let args = [a[0], a[1], a[2]];
    Some(f(l, args))
  })
}

fn slot(l: &Local, index: f64) -> Option<&ManagerSlot> {
  l.managers.get(index as usize).and_then(Option::as_ref)
}

thread_local! {
  /// Reused for every key read: no allocation for the key unless the table keeps it.
  static KEY_BUF: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// The WTF-8 bytes of a JS string key.
fn key_bytes(env: &Env, key: &Unknown) -> Result<KeyBuf, Code> {
  let mut buf = KEY_BUF.take();
  crate::key::read_key(env, key, &mut buf)
    .map_err(|e| napi::Error::new(Code::Napi(e.status), e.reason.clone()))?;
  Ok(KeyBuf(buf))
}

/// A key read into the thread's reusable buffer; gives the buffer back when dropped.
struct KeyBuf(Vec<u8>);

impl std::ops::Deref for KeyBuf {
  type Target = [u8];
  fn deref(&self) -> &[u8] {
    &self.0
  }
}

impl Drop for KeyBuf {
  fn drop(&mut self) {
    KEY_BUF.set(std::mem::take(&mut self.0));
  }
}

fn millis(ms: f64) -> Duration {
  // The JS layer validated the range; `as` saturates, so nothing here can panic.
  Duration::from_millis(ms as u64)
}

/// Sets up a module instance on this thread. `onWake` is called on this thread whenever
/// `drain(context)` has something new. Returns `{ args, context }`: the argument array to
/// fill before hot calls (the first instance's, shared by all on the thread) and this
/// instance's context index.
#[napi(catch_unwind)]
pub fn init<'e>(
  env: &'e Env,
  args: Float64Array,
  on_wake: Function<'e, (), ()>,
) -> Result<Object<'e>> {
  if args.len() < 3 {
    return Err(Error::new(Status::InvalidArg, "args must have 3 slots"));
  }
  let tsfn = on_wake
    .build_threadsafe_function::<()>()
    .callee_handled::<false>()
    .weak::<true>()
    .build()?;
  let inbox = Arc::new(Inbox::new(Box::new(TsfnWake(tsfn))));
  if LOCAL.with_borrow(Option::is_none) {
    // A worker thread that exits takes its locks and waiters out of the process table.
    env.add_env_cleanup_hook((), |()| {
      if let Some(l) = LOCAL.with_borrow_mut(Option::take) {
        for inbox in &l.inboxes {
          inbox.close();
        }
        process_table().remove_owners(|o| l.inboxes.iter().any(|i| Arc::ptr_eq(i, &o.inbox)));
      }
    })?;
  }
  let (shared_args, context) = LOCAL.with_borrow_mut(|l| {
    let l = l.get_or_insert_with(|| Local {
      args,
      inboxes: Vec::new(),
      managers: Vec::new(),
      redis: Vec::new(),
    });
    l.inboxes.push(inbox);
    // The same JS object as the first instance's array (through its reference).
    let raw = unsafe { <&mut Float64Array as ToNapiValue>::to_napi_value(env.raw(), &mut l.args) };
    (raw, (l.inboxes.len() - 1) as f64)
  });
  let mut out = Object::new(env)?;
  out.set_named_property("args", unsafe {
    Unknown::from_raw_unchecked(env.raw(), shared_args?)
  })?;
  out.set_named_property("context", context)?;
  Ok(out)
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
  let (retry, delay, wait, process_scope) = match &c.backend {
    Backend::InMemory(m) => (
      m.retry as f64,
      m.delay_ms,
      m.wait().map_or(-1.0, |d| d.as_secs_f64() * 1000.0),
      m.scope == Scope::Process,
    ),
    Backend::Redis(r) => (r.retry_count as f64, r.retry_delay_ms, -1.0, false),
  };
  Ok(ParsedConfig {
    r#type: c.backend.type_name().into(),
    namespace: c.namespace.clone(),
    default_ttl: c.default_ttl_ms,
    retry,
    delay,
    wait,
    process_scope,
  })
}

/// Creates an in-memory manager for module instance `context`; returns its index.
#[napi(catch_unwind)]
pub fn create_manager(context: f64, process_scope: bool, wait_ms: f64) -> Result<f64, Code> {
  with_local(|l, _| {
    let inbox = l.inboxes.get(context as usize)?.clone();
    let slot = ManagerSlot {
      table: if process_scope {
        process_table().clone()
      } else {
        Table::new()
      },
      owner: Owner {
        inbox,
        manager: next_id(),
      },
      wait: (wait_ms >= 0.0).then(|| millis(wait_ms)),
      shared: process_scope,
    };
    l.managers.push(Some(slot));
    Some((l.managers.len() - 1) as f64)
  })
  .flatten()
  .ok_or_else(not_initialized)
}

/// `args`: [manager, ttl]. Returns the lock id (> 0), 0 when busy and the manager may not
/// wait, or `-waiterId` when queued.
#[napi(catch_unwind)]
pub fn acquire(env: &Env, key: Unknown) -> Result<f64, Code> {
  let key = key_bytes(env, &key)?;
  with_local(|l, [manager, ttl, _]| {
    let s = slot(l, manager).ok_or_else(destroyed)?;
    match s.table.acquire(&key, millis(ttl), s.wait, &s.owner) {
      Acquire::Granted(id) => Ok(id as f64),
      Acquire::Busy => Ok(0.0),
      Acquire::Queued(id) => Ok(-(id as f64)),
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
    slot(l, manager)
      .and_then(|s| s.table.release(id as u64, &s.owner.inbox))
      .map_or(0.0, |g| g as f64)
  })
  .unwrap_or(0.0)
}

/// `args`: [manager, id, ttl]. False if `id` no longer holds its lock.
#[napi(catch_unwind)]
pub fn extend() -> bool {
  with_local(|l, [manager, id, ttl]| {
    slot(l, manager).is_some_and(|s| s.table.extend(id as u64, millis(ttl)))
  })
  .unwrap_or(false)
}

/// When lock `id` expires, in epoch milliseconds; 0 if it is no longer held.
#[napi(catch_unwind)]
pub fn expiration(manager: f64, id: f64) -> f64 {
  let expires =
    with_local(|l, _| slot(l, manager).and_then(|s| s.table.expires(id as u64))).flatten();
  let Some(at) = expires else {
    return 0.0;
  };
  // Wall-clock view of a monotonic deadline, for display and for callers' own checks.
  let epoch_ms = std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
  let now = std::time::Instant::now();
  let left_ms = if at > now {
    (at - now).as_secs_f64() * 1000.0
  } else {
    -((now - at).as_secs_f64() * 1000.0)
  };
  (epoch_ms + left_ms).round()
}

/// Takes waiter `id` out of its queue. False if it is no longer queued.
#[napi(catch_unwind)]
pub fn cancel(manager: f64, id: f64) -> bool {
  with_local(|l, _| slot(l, manager).is_some_and(|s| s.table.cancel(id as u64))).unwrap_or(false)
}

#[napi(catch_unwind)]
pub fn is_locked(env: &Env, manager: f64, key: Unknown) -> Result<bool, Code> {
  let key = key_bytes(env, &key)?;
  Ok(with_local(|l, _| slot(l, manager).is_some_and(|s| s.table.is_locked(&key))).unwrap_or(false))
}

/// Keys with state in the manager's table (held or awaited).
#[napi(catch_unwind)]
pub fn key_count(manager: f64) -> f64 {
  with_local(|l, _| slot(l, manager).map_or(0, |s| s.table.key_count())).unwrap_or(0) as f64
}

/// Drops the manager's locks and waiters; in the shared table its keys pass to others.
#[napi(catch_unwind)]
pub fn destroy_manager(manager: f64) {
  let gone =
    with_local(|l, _| l.managers.get_mut(manager as usize).and_then(Option::take)).flatten();
  if let Some(s) = gone {
    if s.shared {
      let me = s.owner.manager;
      s.table.remove_owners(|o| o.manager == me);
    } else {
      s.table.destroy();
    }
  }
}

/// Events for module instance `context` decided elsewhere, flat: `[id, kind, ...]`,
/// kind 1 = granted, 2 = timed out, 3 = a Redis request finished (see `redis_take`).
#[napi(catch_unwind)]
pub fn drain(context: f64) -> Vec<f64> {
  let events = with_local(|l, _| l.inboxes.get(context as usize).map(|i| i.drain()))
    .flatten()
    .unwrap_or_default();
  let mut out = Vec::with_capacity(events.len() * 2);
  for e in events {
    match e {
      Event::Granted(id) => out.extend([id as f64, 1.0]),
      Event::TimedOut(id) => out.extend([id as f64, 2.0]),
      Event::Done(id) => out.extend([id as f64, 3.0]),
    }
  }
  out
}

/// The public token of in-memory lock `id` (see `token.rs`).
#[napi(catch_unwind)]
pub fn token(id: f64) -> String {
  crate::token::token_hex(id as u64)
}

// ---- Redis backend. Requests return an id at once; the outcome arrives as a `Done`
// event for the module instance, and `redisTake` reads it. The I/O costs ~100 µs, so
// plain arguments are fine here.

fn redis_manager(manager: f64) -> Option<Arc<RedisManager>> {
  with_local(|l, _| l.redis.get(manager as usize).cloned().flatten()).flatten()
}

/// Creates a Redis manager for module instance `context`; returns its index.
#[napi(catch_unwind)]
pub fn redis_create(context: f64, json: String) -> Result<f64, Code> {
  let c = config::parse(&json)?;
  let Backend::Redis(cfg) = &c.backend else {
    return Err(napi::Error::new(Code::Config, "type must be 'redis'"));
  };
  with_local(|l, _| {
    let inbox = l
      .inboxes
      .get(context as usize)
      .cloned()
      .ok_or_else(not_initialized)?;
    let m = RedisManager::new(cfg, inbox).map_err(|e| napi::Error::new(Code::Config, e))?;
    l.redis.push(Some(m));
    Ok((l.redis.len() - 1) as f64)
  })
  .ok_or_else(not_initialized)?
}

/// Starts a lock request for `key` with `ttlMs`; returns the request id.
#[napi(catch_unwind)]
pub fn redis_lock(manager: f64, key: String, ttl_ms: f64) -> Result<f64, Code> {
  let m = redis_manager(manager).ok_or_else(destroyed)?;
  Ok(m.lock(key, millis(ttl_ms)) as f64)
}

/// Marks a lock request aborted: it leaves the local queue at once, or gives back a
/// lock its last attempt took.
#[napi(catch_unwind)]
pub fn redis_cancel(manager: f64, req: f64) {
  if let Some(m) = redis_manager(manager) {
    m.cancel(req as u64);
  }
}

/// Keys held or awaited through this Redis manager in this process.
#[napi(catch_unwind)]
pub fn redis_key_count(manager: f64) -> f64 {
  redis_manager(manager).map_or(0.0, |m| m.key_count() as f64)
}

/// Starts an unlock; returns the request id.
#[napi(catch_unwind)]
pub fn redis_unlock(manager: f64, lock_id: f64) -> Result<f64, Code> {
  let m = redis_manager(manager).ok_or_else(destroyed)?;
  Ok(m.unlock(lock_id as u64) as f64)
}

/// Starts an extend and returns the request id, or 0 when refused without I/O because
/// the lock's validity has passed (or it was released).
#[napi(catch_unwind)]
pub fn redis_extend(manager: f64, lock_id: f64, ttl_ms: f64) -> Result<f64, Code> {
  let m = redis_manager(manager).ok_or_else(destroyed)?;
  Ok(
    m.extend(lock_id as u64, millis(ttl_ms))
      .map_or(0.0, |r| r as f64),
  )
}

/// Destroys the manager; returns the id of the request that ends when its locks are
/// released and its connections are closing. Its outcomes stay readable.
#[napi(catch_unwind)]
pub fn redis_destroy(manager: f64) -> f64 {
  redis_manager(manager).map_or(0.0, |m| m.destroy() as f64)
}

/// A finished request's outcome, for the JS layer to turn into a value or an error.
#[napi(object)]
pub struct RedisOutcome {
  /// 'locked' | 'extended' | 'done' | 'busy' | 'unavailable' | 'lost' | 'destroyed'
  pub kind: String,
  pub lock_id: f64,
  pub value: String,
  pub expiration: f64,
  pub attempts: f64,
  pub causes: Vec<String>,
}

#[napi(catch_unwind)]
pub fn redis_take(manager: f64, req: f64) -> Option<RedisOutcome> {
  let m = redis_manager(manager)?;
  let o = m.take(req as u64)?;
  let mut out = RedisOutcome {
    kind: String::new(),
    lock_id: 0.0,
    value: String::new(),
    expiration: 0.0,
    attempts: 0.0,
    causes: Vec::new(),
  };
  match o {
    Outcome::Locked {
      lock_id,
      token,
      expiration,
      attempts,
    } => {
      out.kind = "locked".into();
      out.lock_id = lock_id as f64;
      out.value = token;
      out.expiration = expiration;
      out.attempts = attempts as f64;
    }
    Outcome::Extended { expiration } => {
      out.kind = "extended".into();
      out.expiration = expiration;
    }
    Outcome::Done => out.kind = "done".into(),
    Outcome::Destroyed => out.kind = "destroyed".into(),
    Outcome::Failed(Failure::Busy { attempts }) => {
      out.kind = "busy".into();
      out.attempts = attempts as f64;
    }
    Outcome::Failed(Failure::Unavailable { attempts, causes }) => {
      out.kind = "unavailable".into();
      out.attempts = attempts as f64;
      out.causes = causes;
    }
    Outcome::Failed(Failure::Lost) => out.kind = "lost".into(),
  }
  Some(out)
}
