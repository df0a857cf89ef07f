//! A Redis lock manager: what one `create({ type: 'redis' })` owns.
//!
//! Concurrent `lock()` calls of a manager for one key queue locally, FIFO in call order,
//! on a gate, so only the head of the queue talks to Redis; the next one starts when the
//! head unlocks or its key expires, not at a retry timer. Every request runs as a task on
//! the I/O runtime and ends with an `Outcome` posted to the JS thread's inbox:
//! completions that arrive together wake the JS thread once.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, Notify};

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

/// A key's local queue: whether someone of this manager has it, and who waits, in call
/// order. Waiters whose receiver is gone (aborted, timed out) are skipped. A waiter's turn
/// may come with a baton: the token under which the previous holder still has the key in
/// Redis, so that taking it over costs one round trip instead of a delete and a set.
#[derive(Default)]
struct Gate {
  taken: bool,
  waiters: VecDeque<oneshot::Sender<Baton>>,
}

/// The previous local holder's token, if it handed the key on without deleting it.
type Baton = Option<String>;

struct Held {
  key: String,
  token: String,
  valid_until: Instant,
  /// When the key is gone from Redis at the latest: the gate opens then for the next
  /// local caller (at `valid_until` the key may still be there for a few ms of drift).
  expires_at: Instant,
  watcher: Option<tokio::task::AbortHandle>,
}

impl Drop for Held {
  fn drop(&mut self) {
    if let Some(w) = self.watcher.take() {
      w.abort();
    }
  }
}

/// Abort of one lock request: a flag checked between attempts, and a wake-up for a
/// request waiting in the local queue.
#[derive(Default)]
struct Cancel {
  flag: AtomicBool,
  wake: Notify,
}

impl Cancel {
  fn cancel(&self) {
    self.flag.store(true, Ordering::Release);
    self.wake.notify_one();
  }

  fn is_set(&self) -> bool {
    self.flag.load(Ordering::Acquire)
  }
}

pub struct RedisManager {
  /// Taken out by `destroy()`: with the last task done, the connections close.
  redlock: Mutex<Option<Arc<Redlock>>>,
  inbox: Arc<Inbox>,
  gates: Mutex<HashMap<String, Gate>>,
  held: Mutex<HashMap<Id, Held>>,
  outcomes: Mutex<HashMap<Id, Outcome>>,
  cancels: Mutex<HashMap<Id, Arc<Cancel>>>,
  running: Mutex<HashMap<Id, tokio::task::JoinHandle<()>>>,
  /// How long a caller may wait in the local queue: `retryCount × retryDelay` (none if negative).
  local_wait: Option<Duration>,
  retry_count: i64,
  node_timeout: Duration,
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
      running: Mutex::new(HashMap::new()),
      local_wait: (cfg.retry_count >= 0)
        .then(|| Duration::from_secs_f64(cfg.retry_count as f64 * cfg.retry_delay_ms / 1000.0)),
      retry_count: cfg.retry_count,
      node_timeout: timeout,
      destroyed: AtomicBool::new(false),
    }))
  }

  fn redlock(&self) -> Option<Arc<Redlock>> {
    self.redlock.lock().clone()
  }

  fn finish(&self, req: Id, outcome: Outcome) {
    self.running.lock().remove(&req);
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
    // Registered before it can finish, so `finish` always finds it.
    let mut running = self.running.lock();
    let handle = crate::runtime::runtime().spawn(async move {
      let outcome = fut.await;
      me.finish(req, outcome);
    });
    running.insert(req, handle);
    req
  }

  /// Takes the key's gate now, or a place in its queue (decided here, in call order).
  fn enter_gate(&self, key: &str) -> Option<oneshot::Receiver<Baton>> {
    let mut gates = self.gates.lock();
    let gate = gates.entry(key.to_owned()).or_default();
    if !gate.taken {
      gate.taken = true;
      return None;
    }
    let (tx, rx) = oneshot::channel();
    gate.waiters.push_back(tx);
    Some(rx)
  }

  /// Passes the gate (and `baton`) to the first waiter still waiting, or frees it (idle
  /// keys cost nothing). Returns the baton if nobody took it: its token must be released.
  fn leave_gate(&self, key: &str, mut baton: Baton) -> Baton {
    let mut gates = self.gates.lock();
    if let Some(gate) = gates.get_mut(key) {
      while let Some(next) = gate.waiters.pop_front() {
        match next.send(baton) {
          Ok(()) => return None,
          Err(back) => baton = back,
        }
      }
      gates.remove(key);
    }
    baton
  }

  /// Hands the key, still set to `token` in Redis, to the first local waiter. False (and
  /// the gate stays taken) when nobody waits.
  fn hand_on(&self, key: &str, token: &str) -> bool {
    let mut gates = self.gates.lock();
    let Some(gate) = gates.get_mut(key) else {
      return false;
    };
    while let Some(next) = gate.waiters.pop_front() {
      if next.send(Some(token.to_owned())).is_ok() {
        return true;
      }
    }
    false
  }

  /// Leaves the gate with a baton we cannot use: the next waiter gets it, or its token is
  /// released.
  fn pass_on(&self, redlock: &Arc<Redlock>, key: &str, baton: Baton) {
    if let Some(token) = self.leave_gate(key, baton) {
      let (redlock, key) = (redlock.clone(), key.to_owned());
      crate::runtime::runtime().spawn(async move { redlock.release(&key, &token).await });
    }
  }

  /// Keys with a local gate (held or awaited in this process): for tests and stats.
  pub fn key_count(&self) -> usize {
    self.gates.lock().len()
  }

  /// Starts a lock request; its outcome arrives as `Event::Done(req)`.
  pub fn lock(self: &Arc<Self>, key: String, ttl: Duration) -> Id {
    let redlock = match self.redlock() {
      Some(r) if !self.destroyed.load(Ordering::Acquire) => r,
      _ => return self.spawn(async { Outcome::Destroyed }),
    };
    let queued = self.enter_gate(&key);
    let cancel = Arc::new(Cancel::default());
    let me = self.clone();
    let c = cancel.clone();
    let mut cancels = self.cancels.lock();
    let req = self.spawn(async move { me.run_lock(redlock, key, ttl, queued, c).await });
    cancels.insert(req, cancel);
    req
  }

  async fn run_lock(
    self: Arc<Self>,
    redlock: Arc<Redlock>,
    key: String,
    ttl: Duration,
    queued: Option<oneshot::Receiver<Baton>>,
    cancel: Arc<Cancel>,
  ) -> Outcome {
    let mut baton: Baton = None;
    if let Some(mut turn) = queued {
      let budget = async {
        match self.local_wait {
          Some(w) => tokio::time::sleep(w).await,
          None => std::future::pending().await,
        }
      };
      let got = tokio::select! {
        r = &mut turn => r.ok(),
        _ = cancel.wake.notified() => None,
        _ = budget => None,
      };
      match got {
        Some(b) => baton = b,
        None => {
          // Our turn may have come just now: then pass it on, so nobody is stranded.
          turn.close();
          if let Ok(b) = turn.try_recv() {
            self.pass_on(&redlock, &key, b);
          }
          let attempts = (self.retry_count + 1).max(1) as u32;
          return Outcome::Failed(Failure::Busy { attempts });
        }
      }
    }
    if cancel.is_set() {
      self.pass_on(&redlock, &key, baton);
      return Outcome::Failed(Failure::Busy { attempts: 0 });
    }
    let taken_over = match &baton {
      Some(from) => redlock.transfer(&key, from, ttl).await,
      None => None,
    };
    let result = match taken_over {
      Some(acq) => Ok(acq),
      None => redlock.acquire(&key, ttl, || cancel.is_set()).await,
    };
    match result {
      Ok(acq) if cancel.is_set() => {
        // Aborted (or destroyed) while the last attempt was in flight: give it back.
        redlock.release(&key, &acq.token).await;
        self.leave_gate(&key, None);
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
            expires_at: acq.expires_at,
            watcher: None,
          },
        );
        let watcher = self.watch_expiry(lock_id, key);
        match self.held.lock().get_mut(&lock_id) {
          Some(h) => h.watcher = Some(watcher),
          None => watcher.abort(), // unlocked already
        }
        Outcome::Locked {
          lock_id,
          token: acq.token,
          expiration,
          attempts: acq.attempts,
        }
      }
      Err(f) => {
        self.leave_gate(&key, None);
        Outcome::Failed(f)
      }
    }
  }

  /// Opens the local gate once a lock that nobody unlocked is gone from Redis.
  fn watch_expiry(self: &Arc<Self>, lock_id: Id, key: String) -> tokio::task::AbortHandle {
    let me = Arc::downgrade(self);
    crate::runtime::runtime()
      .spawn(async move {
        let mut until = Instant::now();
        loop {
          tokio::time::sleep_until(until.into()).await;
          let Some(m) = me.upgrade() else { break };
          let mut held = m.held.lock();
          match held.get_mut(&lock_id) {
            Some(h) if h.expires_at <= Instant::now() => {
              h.watcher = None; // this task: it must not abort itself
              held.remove(&lock_id);
              drop(held);
              m.leave_gate(&key, None);
              break;
            }
            Some(h) => until = h.expires_at, // first look, or extended
            None => break,                   // unlocked: that path opened the gate
          }
        }
      })
      .abort_handle()
  }

  /// Aborts a queued or running lock request: it leaves the local queue at once, or gives
  /// back the lock its last attempt took. Its outcome is still posted.
  pub fn cancel(&self, req: Id) {
    if let Some(c) = self.cancels.lock().get(&req) {
      c.cancel();
    }
  }

  /// Starts an unlock. With a local waiter, the key passes to it as it is (it takes it
  /// over in one round trip); otherwise compare-and-delete on every node, then the gate
  /// opens. Always ends `Done`: an expired or foreign key is left alone (node-redlock v3).
  pub fn unlock(self: &Arc<Self>, lock_id: Id) -> Id {
    let held = self.held.lock().remove(&lock_id);
    let redlock = self.redlock();
    let me = self.clone();
    self.spawn(async move {
      if let Some(h) = held {
        let live = h.valid_until > Instant::now();
        if !(live && me.hand_on(&h.key, &h.token)) {
          if let Some(redlock) = redlock {
            redlock.release(&h.key, &h.token).await;
          }
          me.leave_gate(&h.key, None);
        }
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
        Ok((new_valid, new_expiry)) => {
          if let Some(h) = me.held.lock().get_mut(&lock_id) {
            h.valid_until = new_valid;
            h.expires_at = new_expiry;
          }
          Outcome::Extended {
            expiration: epoch_ms(new_valid),
          }
        }
        Err(f) => Outcome::Failed(f),
      }
    }))
  }

  /// Rejects new requests, cancels running ones (each still takes back whatever its
  /// attempt set, within the node timeout), releases held locks, and lets the
  /// connections close. Ends `Done`.
  pub fn destroy(self: &Arc<Self>) -> Id {
    self.destroyed.store(true, Ordering::Release);
    for c in self.cancels.lock().values() {
      c.cancel();
    }
    let running: Vec<_> = self.running.lock().drain().map(|(_, h)| h).collect();
    let held: Vec<Held> = self.held.lock().drain().map(|(_, h)| h).collect();
    let redlock = self.redlock.lock().take();
    // An attempt and its clean-up each take at most a node timeout, plus the retry pause.
    let bound = self.node_timeout * 3 + Duration::from_secs(1);
    self.spawn(async move {
      let _ = tokio::time::timeout(bound, futures_util::future::join_all(running)).await;
      if let Some(redlock) = redlock {
        let releases = held.iter().map(|h| redlock.release(&h.key, &h.token));
        futures_util::future::join_all(releases).await;
      }
      Outcome::Done
    })
  }
}
