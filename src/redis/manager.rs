//! A Redis lock manager: what one `create({ type: 'redis' })` owns.
//!
//! Concurrent `lock()` calls of this process for one key queue locally, FIFO, on a gate,
//! so only the head of the queue talks to Redis; the others wait for its unlock (or its
//! validity to run out), not for a retry timer. Every request runs as a task on the I/O
//! runtime and ends with an `Outcome` posted to the JS thread's inbox: completions that
//! arrive together wake the JS thread once.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex as Gate, OwnedMutexGuard};

use super::node::Node;
use super::redlock::{Failure, Redlock};
use crate::config::RedisConfig;
use crate::memory::{next_id, Event, Id, Inbox};

/// How a request ended, as the JS layer reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
  Locked {
    lock_id: Id,
    token: String,
    /// Epoch ms until which the lock is valid.
    expiration: f64,
    attempts: u32,
  },
  Extended {
    expiration: f64,
  },
  Done,
  Failed(Failure),
  Destroyed,
}

struct Held {
  key: String,
  token: String,
  valid_until: Instant,
  /// The local gate of the key: the next local caller proceeds once this drops.
  _guard: OwnedMutexGuard<()>,
  /// The task that opens the gate at `valid_until`; stopped on unlock.
  watcher: Option<tokio::task::AbortHandle>,
}

impl Drop for Held {
  fn drop(&mut self) {
    if let Some(w) = self.watcher.take() {
      w.abort();
    }
  }
}

pub struct RedisManager {
  /// Taken out by `destroy()`: with the last task done, the connections close.
  redlock: Mutex<Option<Arc<Redlock>>>,
  inbox: Arc<Inbox>,
  gates: Mutex<HashMap<String, Arc<Gate<()>>>>,
  held: Mutex<HashMap<Id, Held>>,
  outcomes: Mutex<HashMap<Id, Outcome>>,
  cancels: Mutex<HashMap<Id, Arc<AtomicBool>>>,
  tasks: Mutex<HashMap<Id, tokio::task::AbortHandle>>,
  /// How long a caller may wait on the local gate: `retryCount × retryDelay` (none if negative).
  local_wait: Option<Duration>,
  retry_count: i64,
  destroyed: AtomicBool,
}

fn epoch_ms(at: Instant) -> f64 {
  let now = Instant::now();
  let wall = SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .unwrap_or_default()
    .as_secs_f64()
    * 1000.0;
  let delta = if at >= now {
    (at - now).as_secs_f64() * 1000.0
  } else {
    -((now - at).as_secs_f64() * 1000.0)
  };
  (wall + delta).floor()
}

impl RedisManager {
  pub fn new(cfg: &RedisConfig, inbox: Arc<Inbox>) -> Result<Arc<RedisManager>, String> {
    let timeout = Duration::from_millis(cfg.node_timeout_ms as u64);
    let connect = Duration::from_millis(cfg.connect_timeout_ms as u64);
    let nodes = cfg
      .nodes
      .iter()
      .map(|n| Node::new(n, timeout, connect).map(Arc::new))
      .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(RedisManager {
      redlock: Mutex::new(Some(Arc::new(Redlock::new(nodes, cfg)))),
      inbox,
      gates: Mutex::new(HashMap::new()),
      held: Mutex::new(HashMap::new()),
      outcomes: Mutex::new(HashMap::new()),
      cancels: Mutex::new(HashMap::new()),
      tasks: Mutex::new(HashMap::new()),
      local_wait: (cfg.retry_count >= 0)
        .then(|| Duration::from_secs_f64(cfg.retry_count as f64 * cfg.retry_delay_ms / 1000.0)),
      retry_count: cfg.retry_count,
      destroyed: AtomicBool::new(false),
    }))
  }

  fn redlock(&self) -> Option<Arc<Redlock>> {
    self.redlock.lock().clone()
  }

  fn finish(&self, req: Id, outcome: Outcome) {
    self.tasks.lock().remove(&req);
    self.cancels.lock().remove(&req);
    self.outcomes.lock().insert(req, outcome);
    self.inbox.push(Event::Done(req));
  }

  /// The outcome of a finished request (once).
  pub fn take(&self, req: Id) -> Option<Outcome> {
    self.outcomes.lock().remove(&req)
  }

  fn spawn<F>(self: &Arc<Self>, fut: F) -> Id
  where
    F: std::future::Future<Output = Outcome> + Send + 'static,
  {
    let req = next_id();
    let me = self.clone();
    let handle = crate::runtime::runtime().spawn(async move {
      let outcome = fut.await;
      me.finish(req, outcome);
    });
    self.tasks.lock().insert(req, handle.abort_handle());
    req
  }

  fn gate(&self, key: &str) -> Arc<Gate<()>> {
    self.gates.lock().entry(key.to_owned()).or_default().clone()
  }

  /// Drops the key's gate when nobody else holds or awaits it (idle keys cost nothing).
  fn forget_gate(&self, key: &str, gate: Arc<Gate<()>>) {
    let mut gates = self.gates.lock();
    // The map's reference and ours: nobody else waits or holds.
    if Arc::strong_count(&gate) == 2 {
      gates.remove(key);
    }
  }

  fn forget_key(&self, key: &str) {
    let gate = self.gates.lock().get(key).cloned();
    if let Some(gate) = gate {
      self.forget_gate(key, gate);
    }
  }

  /// Keys with a local gate (held or awaited in this process): for tests and stats.
  pub fn key_count(&self) -> usize {
    self.gates.lock().len()
  }

  /// Starts a lock request; its outcome arrives as `Event::Done(req)`.
  pub fn lock(self: &Arc<Self>, key: String, ttl: Duration) -> Id {
    if self.destroyed.load(Ordering::Acquire) {
      return self.spawn(async { Outcome::Destroyed });
    }
    let Some(redlock) = self.redlock() else {
      return self.spawn(async { Outcome::Destroyed });
    };
    let cancelled = Arc::new(AtomicBool::new(false));
    let me = self.clone();
    let flag = cancelled.clone();
    let req = self.spawn(async move { me.run_lock(redlock, key, ttl, flag).await });
    self.cancels.lock().insert(req, cancelled);
    req
  }

  async fn run_lock(
    self: Arc<Self>,
    redlock: Arc<Redlock>,
    key: String,
    ttl: Duration,
    cancelled: Arc<AtomicBool>,
  ) -> Outcome {
    let gate = self.gate(&key);
    let guard = match self.local_wait {
      None => Some(gate.clone().lock_owned().await),
      Some(w) => tokio::time::timeout(w, gate.clone().lock_owned())
        .await
        .ok(),
    };
    let Some(guard) = guard else {
      self.forget_gate(&key, gate);
      let attempts = (self.retry_count + 1).max(1) as u32;
      return Outcome::Failed(Failure::Busy { attempts });
    };
    let is_cancelled = || cancelled.load(Ordering::Acquire);
    let result = if is_cancelled() {
      Err(Failure::Busy { attempts: 0 })
    } else {
      redlock.acquire(&key, ttl, is_cancelled).await
    };
    match result {
      Ok(acq) if is_cancelled() => {
        // Aborted while the last attempt was in flight: give it back at once.
        redlock.release(&key, &acq.token).await;
        drop(guard);
        self.forget_gate(&key, gate);
        Outcome::Failed(Failure::Busy {
          attempts: acq.attempts,
        })
      }
      Ok(acq) => {
        let lock_id = next_id();
        let expiration = epoch_ms(acq.valid_until);
        self.held.lock().insert(
          lock_id,
          Held {
            key: key.clone(),
            token: acq.token.clone(),
            valid_until: acq.valid_until,
            _guard: guard,
            watcher: None,
          },
        );
        // The guard keeps the gate alive while held; ours must not count as a user.
        drop(gate);
        let watcher = self.watch_expiry(lock_id, key);
        if let Some(h) = self.held.lock().get_mut(&lock_id) {
          h.watcher = Some(watcher);
        }
        Outcome::Locked {
          lock_id,
          token: acq.token,
          expiration,
          attempts: acq.attempts,
        }
      }
      Err(f) => {
        drop(guard);
        self.forget_gate(&key, gate);
        Outcome::Failed(f)
      }
    }
  }

  /// Opens the local gate when a lock's validity runs out without unlock (or extend).
  fn watch_expiry(self: &Arc<Self>, lock_id: Id, key: String) -> tokio::task::AbortHandle {
    let me = Arc::downgrade(self);
    crate::runtime::runtime()
      .spawn(async move {
        while let Some(until) = me
          .upgrade()
          .and_then(|m| m.held.lock().get(&lock_id).map(|h| h.valid_until))
        {
          tokio::time::sleep_until(until.into()).await;
          let Some(m) = me.upgrade() else { break };
          let mut held = m.held.lock();
          match held.get(&lock_id) {
            Some(h) if h.valid_until <= Instant::now() => {
              let mut expired = held.remove(&lock_id);
              drop(held);
              // This task is the watcher: it must not abort itself.
              if let Some(h) = expired.as_mut() {
                h.watcher = None;
              }
              drop(expired); // opens the gate
              m.forget_key(&key);
              break;
            }
            Some(_) => continue, // extended
            None => break,       // unlocked (that path forgets the gate)
          }
        }
      })
      .abort_handle()
  }

  /// Aborts a queued or running lock request (its outcome is still posted, and ignored).
  pub fn cancel(&self, req: Id) {
    if let Some(flag) = self.cancels.lock().get(&req) {
      flag.store(true, Ordering::Release);
    }
  }

  /// Starts an unlock: compare-and-delete on every node, then the local gate opens.
  /// Always ends `Done`: an expired or foreign key is left alone (node-redlock v3).
  pub fn unlock(self: &Arc<Self>, lock_id: Id) -> Id {
    let held = self.held.lock().remove(&lock_id);
    let redlock = self.redlock();
    let me = self.clone();
    self.spawn(async move {
      if let (Some(h), Some(redlock)) = (held, redlock) {
        redlock.release(&h.key, &h.token).await;
        let key = h.key.clone();
        drop(h); // opens the gate
        me.forget_key(&key);
      }
      Outcome::Done
    })
  }

  /// Starts an extend, or refuses at once (no I/O) if the lock's validity has passed.
  pub fn extend(self: &Arc<Self>, lock_id: Id, ttl: Duration) -> Option<Id> {
    let (key, token, valid_until) = {
      let held = self.held.lock();
      let h = held.get(&lock_id)?;
      if h.valid_until <= Instant::now() {
        return None;
      }
      (h.key.clone(), h.token.clone(), h.valid_until)
    };
    let redlock = self.redlock()?;
    let me = self.clone();
    Some(self.spawn(async move {
      match redlock.extend(&key, &token, ttl, valid_until).await {
        Ok(new_valid) => {
          if let Some(h) = me.held.lock().get_mut(&lock_id) {
            h.valid_until = new_valid;
          }
          Outcome::Extended {
            expiration: epoch_ms(new_valid),
          }
        }
        Err(f) => Outcome::Failed(f),
      }
    }))
  }

  /// Rejects new requests, stops running ones, releases held locks (bounded by the node
  /// timeout), and lets the connections close. Ends `Done`.
  pub fn destroy(self: &Arc<Self>) -> Id {
    self.destroyed.store(true, Ordering::Release);
    for (_, task) in self.tasks.lock().drain() {
      task.abort();
    }
    let held: Vec<Held> = self.held.lock().drain().map(|(_, h)| h).collect();
    self.gates.lock().clear();
    let redlock = self.redlock.lock().take();
    self.spawn(async move {
      if let Some(redlock) = redlock {
        let releases = held.iter().map(|h| redlock.release(&h.key, &h.token));
        futures_util::future::join_all(releases).await;
      }
      Outcome::Done
    })
  }
}
