//! A remote lock manager: what one `create({ type: 'redis' })` (or any remote store)
//! owns. Every request runs as a task (on the JS thread when the store's sockets are driven
//! there, else on the I/O runtime) and ends with exactly one `Outcome` in the JS thread's
//! inbox, also when its future panics or is dropped.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::expiry::Expiries;
use super::gate::Gates;
use super::resources::{self, Resources};
use super::Store;
use super::StoreEvent;
use crate::config::RetryPolicy;
use crate::core::{
  clock, task, Error, Event, Inbox, LockId, ManagerId, Outcome, RequestId, Signal, Spawner, Task,
};

/// What the N-API layer calls: one object-safe face for managers of every store.
pub trait RemoteApi: Send + Sync {
  /// Starts a lock request; the outcome is `Locked` or `Failed`.
  fn lock(&self, key: Arc<[u8]>, ttl: Duration) -> RequestId;
  /// Starts a lock request for every key of `keys` at once (all or nothing), or refuses
  /// at once when the store has no multi-resource locks.
  fn lock_all(&self, keys: Vec<Arc<[u8]>>, ttl: Duration) -> Result<RequestId, Error>;
  /// Starts an unlock; always ends `Done` (an expired or foreign key is left alone).
  fn unlock(&self, lock: LockId) -> RequestId;
  /// Starts an extend, or `None` when refused at once (no I/O): the validity has passed.
  fn extend(&self, lock: LockId, ttl: Duration) -> Option<RequestId>;
  /// The caller gave up on `req` (abort): it leaves the local queue at once, and a lock
  /// it takes or took is given back. Its outcome is never delivered.
  fn cancel(&self, req: RequestId);
  /// Rejects later requests, stops running ones, releases held locks; ends `Done`.
  fn destroy(&self) -> RequestId;
  /// Keys held or awaited through this manager.
  fn key_count(&self) -> usize;
  /// Whether this manager holds `key` and its validity has not passed.
  fn is_locked(&self, key: &[u8]) -> bool;
  /// The source its signals carry.
  fn id(&self) -> ManagerId;
}

/// Abort of one lock request: a flag checked between attempts, and a wake-up for a
/// request that waits in the local queue or between attempts.
#[derive(Default)]
pub(super) struct Cancel {
  flag: AtomicBool,
  pub wake: Notify,
}

impl Cancel {
  pub fn cancel(&self) {
    self.flag.store(true, Ordering::Release);
    self.wake.notify_one();
  }

  pub fn is_set(&self) -> bool {
    self.flag.load(Ordering::Acquire)
  }
}

struct Running {
  cancel: Option<Arc<Cancel>>,
  /// The caller gave up: its outcome is not delivered.
  abandoned: bool,
  task: Option<Task>,
}

/// A lock this manager holds.
pub(super) struct Held {
  pub keys: Resources,
  pub token: String,
  pub valid_until: Instant,
  pub expires_at: Instant,
  /// Its place among the manager's expiries (taken out when this is dropped).
  pub expiry: super::expiry::Entry,
  /// Local handoffs in a row that brought the key to this holder.
  pub handoffs: u32,
  /// `unlock()` was called: not held for `is_locked`; kept for `destroy()` till it runs.
  pub releasing: bool,
}

pub struct RemoteManager<S: Store> {
  pub(super) me: Weak<Self>,
  /// What this manager's signals (`lost`, `error`, `reconnect`) carry as their source.
  pub(super) id: ManagerId,
  /// Closes (its connections) when the last request of a destroyed manager is done.
  store: Arc<S>,
  pub(super) inbox: Arc<Inbox>,
  pub(super) retry: RetryPolicy,
  pub(super) gates: Gates,
  pub(super) held: Mutex<HashMap<LockId, Held>>,
  /// When the held locks' leases end, watched by one task.
  pub(super) expiries: Arc<Expiries>,
  requests: Mutex<HashMap<RequestId, Running>>,
  /// Releases nobody awaits (a lock given back, a token passed on to nobody): destroy()
  /// waits for them too, so it resolves once every lock is released.
  background: Mutex<Vec<Task>>,
  /// Where its tasks run.
  pub(super) spawner: Spawner,
  /// How long destroy() waits for running requests to clean up.
  destroy_bound: Duration,
  destroyed: AtomicBool,
}

impl<S: Store> RemoteManager<S> {
  pub fn new(
    store: S,
    retry: RetryPolicy,
    inbox: Arc<Inbox>,
    destroy_bound: Duration,
  ) -> Arc<Self> {
    let id = ManagerId::next();
    let spawner = if store.on_js_thread() {
      Spawner::Local(inbox.exec.clone())
    } else {
      Spawner::Runtime
    };
    let store = Arc::new(store);
    let signals = inbox.clone();
    store.set_reporter(Arc::new(move |e: StoreEvent| {
      let (name, key, error) = match e {
        StoreEvent::Failed(cause) => (
          "error",
          cause.node.clone(),
          Some(Error::unavailable(0, vec![cause])),
        ),
        StoreEvent::Reconnected(node) => ("reconnect", node, None),
      };
      signals.push(Event::Signal(Signal {
        source: id,
        name,
        key,
        error,
      }));
    }));
    Arc::new_cyclic(|me| RemoteManager {
      me: me.clone(),
      id,
      store,
      inbox,
      retry,
      gates: Gates::default(),
      held: Mutex::new(HashMap::new()),
      expiries: Arc::default(),
      requests: Mutex::new(HashMap::new()),
      background: Mutex::new(Vec::new()),
      spawner,
      destroy_bound,
      destroyed: AtomicBool::new(false),
    })
  }

  /// The store, for new work: none once destroyed.
  pub(super) fn store(&self) -> Option<Arc<S>> {
    (!self.destroyed.load(Ordering::Acquire)).then(|| self.store.clone())
  }

  fn arc(&self) -> Option<Arc<Self>> {
    self.me.upgrade()
  }

  /// Runs `fut` as request `req`; whatever happens to it, `finish` runs once.
  pub(super) fn spawn<F>(&self, cancel: Option<Arc<Cancel>>, fut: F) -> RequestId
  where
    F: Future<Output = Outcome> + Send + 'static,
  {
    let req = RequestId::next();
    let Some(me) = self.arc() else {
      // Being dropped (unreachable from JS, which holds the manager): settle anyway.
      self
        .inbox
        .push(Event::Settled(req, Outcome::Failed(Error::destroyed())));
      return req;
    };
    // Registered before the task can finish, so `finish` always finds it.
    let mut requests = self.requests.lock();
    let task = task::spawn_settled(&self.spawner, fut, move |outcome| me.finish(req, outcome));
    requests.insert(
      req,
      Running {
        cancel,
        abandoned: false,
        task: Some(task),
      },
    );
    req
  }

  fn finish(&self, req: RequestId, outcome: Outcome) {
    let mut requests = self.requests.lock();
    let abandoned = requests.remove(&req).is_some_and(|r| r.abandoned)
      // A lock won just as destroy() ran: destroy() rejected its caller already.
      || (self.destroyed.load(Ordering::Acquire) && matches!(outcome, Outcome::Locked(_)));
    if !abandoned {
      // Pushed under the lock: `cancel` sees the request either running or in the inbox.
      self.inbox.push(Event::Settled(req, outcome));
      return;
    }
    drop(requests);
    if let Outcome::Locked(lease) = outcome {
      self.give_back(lease.lock_id);
    }
  }

  /// Releases a lock nobody will use, with no outcome.
  fn give_back(&self, lock: LockId) {
    if let Some(me) = self.arc() {
      self.in_background(async move { me.release_held(lock).await });
    }
  }

  /// Unlock: with a local waiter, the key passes to it as it is (it takes it over in one
  /// round trip); otherwise compare-and-delete on the store, then the gate opens.
  pub(super) async fn release_held(&self, lock: LockId) {
    let Some(h) = self.held.lock().remove(&lock) else {
      return;
    };
    let Some(key) = h.keys.single() else {
      // Several keys: never handed on as they are (a waiter wants other keys with them).
      self
        .store
        .release_all(h.keys.keys(), &h.token, h.expires_at)
        .await;
      h.keys
        .keys()
        .iter()
        .for_each(|k| drop(self.gates.leave(k, None)));
      return;
    };
    let baton = super::gate::Baton {
      token: h.token.clone(),
      expires_at: h.expires_at,
      handoffs: h.handoffs,
    };
    if h.valid_until > Instant::now() && self.gates.hand_on(key, &baton) {
      return;
    }
    self.store.release(key, &h.token, h.expires_at).await;
    self.gates.leave(key, None);
  }

  /// Leaves the gate with a baton we cannot use: the next waiter gets it, or its token is
  /// released.
  pub(super) fn pass_on(&self, key: &Arc<[u8]>, baton: Option<super::gate::Baton>) {
    let Some(b) = self.gates.leave(key, baton) else {
      return;
    };
    let (store, key) = (self.store.clone(), key.clone());
    self.in_background(async move { store.release(&key, &b.token, b.expires_at).await });
  }

  fn in_background(&self, fut: impl Future<Output = ()> + Send + 'static) {
    let mut bg = self.background.lock();
    bg.retain(|h| !h.is_finished());
    bg.push(self.spawner.spawn(fut));
  }
}

impl<S: Store> RemoteApi for RemoteManager<S> {
  fn lock(&self, key: Arc<[u8]>, ttl: Duration) -> RequestId {
    let Some(me) = self.arc().filter(|_| self.store().is_some()) else {
      return self.spawn(None, async { Outcome::Failed(Error::destroyed()) });
    };
    let queued = self.gates.enter(&key);
    let cancel = Arc::new(Cancel::default());
    let c = cancel.clone();
    self.spawn(Some(cancel), async move {
      me.run_lock(key, ttl, queued, c).await
    })
  }

  fn lock_all(&self, keys: Vec<Arc<[u8]>>, ttl: Duration) -> Result<RequestId, Error> {
    self.start_lock_all(Resources::many(keys), ttl)
  }

  fn unlock(&self, lock: LockId) -> RequestId {
    if let Some(h) = self.held.lock().get_mut(&lock) {
      h.releasing = true;
    }
    let me = self.arc();
    self.spawn(None, async move {
      if let Some(me) = me {
        me.release_held(lock).await;
      }
      Outcome::Done
    })
  }

  fn extend(&self, lock: LockId, ttl: Duration) -> Option<RequestId> {
    let (key, token, valid_until) = {
      let held = self.held.lock();
      let h = held.get(&lock)?;
      if h.valid_until <= Instant::now() {
        return None;
      }
      (h.keys.clone(), h.token.clone(), h.valid_until)
    };
    let store = self.store()?;
    let me = self.arc()?;
    Some(self.spawn(None, async move {
      match me.run_extend(&*store, &key, &token, ttl, valid_until).await {
        Ok(v) => {
          let kept = match me.held.lock().get_mut(&lock) {
            Some(h) => {
              h.valid_until = v.valid_until;
              h.expires_at = v.expires_at;
              true
            }
            None => false,
          };
          if kept {
            Outcome::Extended(clock::epoch_ms(v.valid_until))
          } else {
            // Unlocked, or given up by the expiry watch, while the extend was in flight:
            // the key it just extended is nobody's now; take it back.
            resources::release(&*store, &key, &token, v.expires_at).await;
            Outcome::Failed(Error::expired())
          }
        }
        Err(e) => Outcome::Failed(e),
      }
    }))
  }

  fn cancel(&self, req: RequestId) {
    let mut requests = self.requests.lock();
    if let Some(r) = requests.get_mut(&req) {
      r.abandoned = true;
      if let Some(c) = &r.cancel {
        c.cancel();
      }
      return;
    }
    drop(requests);
    // Finished already: its outcome waits in the inbox, undelivered. Take it back.
    if let Some(Outcome::Locked(lease)) = self.inbox.take_settled(req) {
      self.give_back(lease.lock_id);
    }
  }

  fn destroy(&self) -> RequestId {
    self.destroyed.store(true, Ordering::Release);
    let running: Vec<_> = {
      let mut requests = self.requests.lock();
      for r in requests.values() {
        if let Some(c) = &r.cancel {
          c.cancel();
        }
      }
      requests
        .values_mut()
        .filter_map(|r| r.task.take())
        .collect()
    };
    let held: Vec<Held> = self.held.lock().drain().map(|(_, h)| h).collect();
    let (store, bound, me_bg) = (self.store.clone(), self.destroy_bound, self.me.clone());
    self.spawn(None, async move {
      // Each cancelled request takes back what its attempt set, within the bound.
      let running = running.into_iter().map(Task::join);
      let _ = tokio::time::timeout(bound, futures_util::future::join_all(running)).await;
      // Then the releases they handed to the background.
      if let Some(me) = me_bg.upgrade() {
        let background: Vec<_> = me.background.lock().drain(..).map(Task::join).collect();
        let _ = tokio::time::timeout(bound, futures_util::future::join_all(background)).await;
      }
      let releases = held
        .iter()
        .map(|h| resources::release(&*store, &h.keys, &h.token, h.expires_at));
      futures_util::future::join_all(releases).await;
      store.quiesce(bound).await;
      Outcome::Done
    })
  }

  fn key_count(&self) -> usize {
    self.gates.len()
  }

  fn id(&self) -> ManagerId {
    self.id
  }

  fn is_locked(&self, key: &[u8]) -> bool {
    let now = Instant::now();
    self
      .held
      .lock()
      .values()
      .any(|h| !h.releasing && h.keys.contains(key) && h.valid_until > now)
  }
}
