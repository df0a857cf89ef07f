//! The N-API surface, the only code that knows about N-API: one small module per face
//! (`memory`, `remote`), plus what they share here: the per-thread state, `init`,
//! `create`, `destroy` and `drain`. Everything runs synchronously on the calling JS
//! thread; the only way back into JS from elsewhere is the thread's weak wake-up function.

mod admin;
mod events;
mod faces;
mod io;
mod key;
mod memory;
mod options;
mod remote;
mod slots;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::cell::RefCell;
use std::sync::Arc;

use crate::config::{self, Backend};
use crate::core::{Error, ErrorKind, Inbox, Wake};
use crate::memory::process_table;
use crate::remote::{RemoteApi, RemoteManager};
use memory::MemoryManager;
use slots::Slots;

/// A weak threadsafe function: it wakes the JS thread but never keeps its loop alive.
struct TsfnWake(ThreadsafeFunction<(), (), (), Status, false, true>);

/// Wake-ups sent to JS threads so far (see `wake_count`).
static WAKES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Wake for TsfnWake {
  fn wake(&self) {
    WAKES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // NonBlocking never waits; a closing environment just drops the wake-up.
    let _ = self.0.call((), ThreadsafeFunctionCallMode::NonBlocking);
  }
}

enum Manager {
  Memory(MemoryManager),
  Remote(Arc<dyn RemoteApi>),
  /// A drop-in face's connection (`compat/`).
  Face(Arc<crate::compat::Client>),
}

/// What one JS thread has: the argument array of the in-memory hot path, one inbox per
/// module instance loaded on the thread (a test runner may load the module once per vm
/// context), and its managers.
struct Local {
  args: Float64Array,
  inboxes: Vec<Arc<Inbox>>,
  managers: Slots<Manager>,
}

thread_local! {
  static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

fn not_initialized() -> napi::Error<ErrorKind> {
  Error::internal("oxlock: init() was not called on this thread").into()
}

fn destroyed() -> napi::Error<ErrorKind> {
  Error::destroyed().into()
}

/// Milliseconds from JS as a duration. The JS layer validated the range; `as` saturates,
/// so nothing here can panic.
fn millis(ms: f64) -> std::time::Duration {
  std::time::Duration::from_millis(ms as u64)
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
    return Err(napi::Error::new(
      Status::InvalidArg,
      "args must have 3 slots",
    ));
  }
  crate::memory::start_timer().map_err(|e| {
    napi::Error::new(
      Status::GenericFailure,
      format!("cannot start the oxlock timer: {e}"),
    )
  })?;
  let tsfn = on_wake
    .build_threadsafe_function::<()>()
    .callee_handled::<false>()
    .weak::<true>()
    .build()?;
  let inbox = Arc::new(Inbox::new(Box::new(TsfnWake(tsfn))));
  if LOCAL.with_borrow(Option::is_none) {
    // A worker thread that exits takes its locks and waiters out of the process table.
    // (Its remote locks stay until their ttl, as those of a process that exits do.)
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
      managers: Slots::default(),
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

/// How many times another thread has woken a JS thread of this process: a request whose
/// socket the JS thread drives should not add to it (tests check that).
#[napi]
pub fn wake_count() -> f64 {
  WAKES.load(std::sync::atomic::Ordering::Relaxed) as f64
}

/// Whether Redis nodes get sockets the JS thread drives (the default); `OXLOCK_IO=thread`
/// keeps every connection on the I/O thread (for comparisons).
fn js_io_enabled() -> bool {
  static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
  *ON.get_or_init(|| std::env::var("OXLOCK_IO").map_or(true, |v| v != "thread"))
}

/// What the JS layer needs of a new manager.
#[napi(object)]
pub struct ManagerInfo {
  /// The manager's handle for every later call.
  pub handle: f64,
  pub r#type: String,
  pub namespace: Option<String>,
  pub default_ttl: f64,
  /// Attempts after the first (for node-redlock's busy message); negative: no limit.
  pub retry: f64,
  /// What its signals (`lost`, `error`, `reconnect`) carry as `source` (remote managers).
  pub id: Option<f64>,
  /// In memory: `'instance'` (the JS layer keeps the table: `lib/table.js`) or `'process'`.
  pub scope: Option<String>,
  /// In memory: how long a contended `lock()` may wait, in ms; -1: no limit.
  pub wait_ms: Option<f64>,
}

/// Parses `options` (the object given to `create()`, untouched) and creates the manager
/// for module instance `context`. `expected` names the type a class constructor requires.
#[napi(catch_unwind)]
pub fn create(
  env: &Env,
  context: f64,
  options: Unknown,
  expected: Option<String>,
) -> Result<ManagerInfo, ErrorKind> {
  let value = options::read(env.raw(), options.raw(), "", 0).map_err(|e| {
    napi::Error::new(
      ErrorKind::ConfigType,
      format!("options cannot be read: {}", e.0),
    )
  })?;
  let cfg = config::parse_as(&value, expected.as_deref().unwrap_or("inMemory"))?;
  let type_name = cfg.backend.type_name();
  if let Some(t) = expected.filter(|t| t != type_name) {
    return Err(
      Error::new(
        ErrorKind::Config,
        format!("type must be '{t}' here, got '{type_name}'"),
      )
      .into(),
    );
  }
  let mut id = None;
  let handle = register(context, |inbox| {
    let manager = match &cfg.backend {
      Backend::InMemory(m) => Manager::Memory(MemoryManager::new(m, inbox)),
      Backend::Redis(r) => {
        let store = crate::redis::connect(r, js_io_enabled().then_some(&*inbox))?;
        let bound = crate::redis::destroy_bound(r);
        Manager::Remote(RemoteManager::new(store, r.retry, inbox, bound))
      }
      Backend::Postgres(p) => {
        let store = crate::postgres::connect(p)?;
        let bound = crate::postgres::destroy_bound(p);
        Manager::Remote(RemoteManager::new(store, p.retry, inbox, bound))
      }
    };
    if let Manager::Remote(r) = &manager {
      id = Some(r.id().as_f64());
    }
    Ok(manager)
  })?;
  Ok(ManagerInfo {
    handle,
    r#type: type_name.into(),
    namespace: cfg.namespace.clone(),
    default_ttl: cfg.default_ttl_ms,
    retry: cfg.backend.retry_count() as f64,
    id,
    scope: match &cfg.backend {
      Backend::InMemory(m) => Some(
        match m.scope {
          crate::config::Scope::Process => "process",
          crate::config::Scope::Instance => "instance",
        }
        .into(),
      ),
      _ => None,
    },
    wait_ms: match &cfg.backend {
      Backend::InMemory(m) => Some(m.wait().map_or(-1.0, |w| w.as_secs_f64() * 1000.0)),
      _ => None,
    },
  })
}

/// Makes a manager for module instance `context` (given its inbox) and registers it on
/// this thread; returns its handle.
fn register(
  context: f64,
  make: impl FnOnce(Arc<Inbox>) -> std::result::Result<Manager, Error>,
) -> std::result::Result<f64, napi::Error<ErrorKind>> {
  with_local(|l, _| {
    let inbox = l
      .inboxes
      .get(context as usize)
      .ok_or_else(not_initialized)?
      .clone();
    let manager = make(inbox)?;
    l.managers
      .insert(manager)
      .ok_or_else(|| Error::internal("too many lock managers alive on this thread").into())
  })
  .ok_or_else(not_initialized)?
}

/// Destroys a manager. In memory it is done at once (0 is returned); a remote manager
/// returns the request that ends once its locks are released and its connections close.
#[napi(catch_unwind)]
pub fn destroy(handle: f64) -> f64 {
  match with_local(|l, _| l.managers.remove(handle)).flatten() {
    Some(Manager::Memory(m)) => {
      m.destroy();
      0.0
    }
    Some(Manager::Remote(r)) => {
      let req = r.destroy().as_f64();
      // Its tasks could wait for the flush like the other calls'; run here, the releases
      // are ready a little sooner, and the outcome still waits for the flush (owed).
      io::run_tasks();
      req
    }
    Some(Manager::Face(c)) => {
      c.close();
      0.0
    }
    None => 0.0,
  }
}

/// Keys held or awaited through this manager (in memory: in its table).
#[napi(catch_unwind)]
pub fn size(handle: f64) -> f64 {
  with_local(|l, _| match l.managers.get(handle) {
    Some(Manager::Memory(m)) => m.table.key_count() as f64,
    Some(Manager::Remote(r)) => r.key_count() as f64,
    Some(Manager::Face(_)) | None => 0.0,
  })
  .unwrap_or(0.0)
}

/// Whether `key` is held right now (in memory: by anyone in the table; remote: by this
/// manager, within its validity).
#[napi(catch_unwind)]
pub fn is_locked(env: &Env, handle: f64, key: Unknown) -> Result<bool, ErrorKind> {
  let key = key::read(env, &key)?;
  Ok(
    with_local(|l, _| match l.managers.get(handle) {
      Some(Manager::Memory(m)) => m.table.is_locked(&key),
      Some(Manager::Remote(r)) => r.is_locked(&key),
      Some(Manager::Face(_)) | None => false,
    })
    .unwrap_or(false),
  )
}

/// Events for module instance `context` decided elsewhere (grants and timeouts of
/// in-memory waiters, outcomes of remote requests), packed as `events::pack` says, or
/// null when there are none.
#[napi(catch_unwind)]
pub fn drain(env: &Env, context: f64) -> Result<Option<BufferSlice<'_>>> {
  // What woke this thread may be a local task (a timer, a notification from elsewhere).
  io::run_tasks();
  let drained = with_local(|l, _| l.inboxes.get(context as usize).map(|i| i.drain()))
    .flatten()
    .unwrap_or_default();
  if drained.is_empty() {
    return Ok(None);
  }
  BufferSlice::copy_from(env, events::pack(drained)).map(Some)
}

/// The events of the last `drain` that are not packed (failures, values, signals), as
/// objects, in order.
#[napi(catch_unwind)]
pub fn drain_objects() -> Vec<events::NativeEvent> {
  events::take_objects()
}
