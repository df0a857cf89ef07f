//! The path of one lock request: a turn in the local queue, a takeover of the key from the
//! previous local holder or attempts on the store, then a lease that is watched until it
//! is unlocked or expires. And the retry loop of extend.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use super::gate::Baton;
use super::manager::{Cancel, Held, RemoteManager};
use super::resources::{self, Resources};
use super::{watch, Attempt, Store, Validity};
use crate::core::{clock, token, Error, ErrorKind, Lease, LockId, Outcome};

/// The key's gate while a lock request owns it; leaves it when dropped armed.
struct GateOwned<'a, S: Store> {
  manager: &'a RemoteManager<S>,
  key: &'a Arc<[u8]>,
  armed: bool,
}

impl<S: Store> Drop for GateOwned<'_, S> {
  fn drop(&mut self) {
    if self.armed {
      self.manager.gates.leave(self.key, None);
    }
  }
}

impl<S: Store> RemoteManager<S> {
  pub(super) async fn run_lock(
    self: Arc<Self>,
    key: Arc<[u8]>,
    ttl: Duration,
    queued: Option<oneshot::Receiver<Option<Baton>>>,
    cancel: Arc<Cancel>,
  ) -> Outcome {
    let Some(store) = self.store() else {
      match queued {
        None => {
          self.gates.leave(&key, None); // ours: taken when lock() was called
        }
        Some(mut turn) => {
          // Our turn may have come already, with a token to release: pass it on.
          turn.close();
          if let Ok(b) = turn.try_recv() {
            self.pass_on(&key, b);
          }
        }
      }
      return Outcome::Failed(Error::destroyed());
    };
    let mut baton = None;
    if let Some(turn) = queued {
      match self.wait_turn(&*store, &key, turn, &cancel).await {
        Ok(b) => baton = b,
        Err(e) => return Outcome::Failed(e),
      }
    }
    // We own the key's gate from here: whatever happens (a panic included), it is left.
    let mut gate = GateOwned {
      manager: &self,
      key: &key,
      armed: true,
    };
    if cancel.is_set() {
      gate.armed = false;
      self.pass_on(&key, baton);
      return Outcome::Failed(Error::busy(0));
    }
    let taken_over = match baton {
      Some(from) => {
        let to = match fresh_token() {
          Ok(t) => t,
          Err(e) => {
            gate.armed = false;
            self.pass_on(&key, Some(from));
            return Outcome::Failed(e);
          }
        };
        match store
          .try_transfer(&key, &from.token, &to, ttl, from.handoffs)
          .await
        {
          Some(v) => Some((v, to, from.handoffs + 1)),
          None => {
            // The previous holder's token must be gone before a SET NX can win.
            store.release(&key, &from.token, from.expires_at).await;
            if from.handoffs >= super::FAIR_HANDOFFS {
              // Given back for fairness, maybe: let a waiter elsewhere take it first.
              tokio::select! {
                _ = tokio::time::sleep(super::FAIR_COURTESY) => {}
                _ = cancel.wake.notified() => {}
              }
            }
            None
          }
        }
      }
      None => None,
    };
    let keys = Resources::one(key.clone());
    let result = match taken_over {
      Some((v, token, handoffs)) => Ok((v, 1, token, handoffs)),
      None => self
        .attempts(&*store, &keys, ttl, &cancel)
        .await
        .map(|(v, n, token)| (v, n, token, 0)),
    };
    match result {
      Ok((v, _, token, _)) if cancel.is_set() => {
        // Aborted (or destroyed) while the last attempt was in flight: give it back.
        store.release(&key, &token, v.expires_at).await;
        Outcome::Failed(Error::busy(0))
      }
      Ok((v, attempts, token, handoffs)) => {
        gate.armed = false; // the lease owns the gate now
        Outcome::Locked(self.hold(keys, token, v, attempts, handoffs))
      }
      Err(e) => Outcome::Failed(e),
    }
  }

  /// Waits for this caller's turn in the local queue, for at most the retry budget. When
  /// the budget runs out, one look at the store tells whether the key is held (busy) or
  /// the store is down (unavailable).
  async fn wait_turn(
    &self,
    store: &S,
    key: &Arc<[u8]>,
    mut turn: oneshot::Receiver<Option<Baton>>,
    cancel: &Cancel,
  ) -> Result<Option<Baton>, Error> {
    let budget = async {
      match self.retry.local_wait() {
        Some(w) => tokio::time::sleep(w).await,
        None => std::future::pending().await,
      }
    };
    let got = tokio::select! {
      r = &mut turn => r.ok(),
      _ = cancel.wake.notified() => None,
      _ = budget => None,
    };
    if let Some(b) = got {
      return Ok(b);
    }
    // Our turn may have come just now: then pass it on, so nobody is stranded.
    turn.close();
    if let Ok(b) = turn.try_recv() {
      self.pass_on(key, b);
    }
    let attempts = self.retry.all_attempts();
    if cancel.is_set() {
      return Err(Error::busy(0));
    }
    Err(match store.inspect(key).await {
      Ok(_) => Error::busy(attempts),
      Err(causes) => Error::failed(attempts, causes),
    })
  }

  /// Attempts until one wins, the retry budget is spent or the caller gives up. Every
  /// attempt has a fresh token, so a late clean-up of a failed attempt (it is not awaited)
  /// can only ever delete that attempt's own value, never the key a later one won.
  pub(super) async fn attempts(
    &self,
    store: &S,
    keys: &Resources,
    ttl: Duration,
    cancel: &Cancel,
  ) -> Result<(Validity, u32, String), Error> {
    // Taken once the key is found held, not before: an uncontended lock costs no
    // subscription. The store fires a new watch once it listens, so a key freed between
    // the failed attempt and then is not missed.
    let mut watch = None;
    let mut attempts = 0u32;
    // Attempts on the retry timer: the budget. Those a notice (or the holder's expiry)
    // triggers come on top, within the same time, so a busy key's waiters are not turned
    // away sooner because others' unlocks woke them.
    let mut timed = 0u32;
    loop {
      attempts += 1;
      timed += 1;
      let token = fresh_token()?;
      // A failure reports the timed attempts: with the budget spent, `retry + 1` (as
      // node-redlock's message says), however many notices woke the waiter in between.
      let (last, expires) = match resources::acquire(store, keys, &token, ttl).await {
        Attempt::Won(v) => return Ok((v, attempts, token)),
        Attempt::Held => (Error::busy(timed), None),
        Attempt::HeldUntil(at) => (Error::busy(timed), Some(at)),
        Attempt::Failed(causes) => (Error::failed(timed, causes), None),
      };
      // Refused credentials, or keys in different slots, are refused again: the caller
      // hears it now, not after the budget.
      let fatal = matches!(last.kind, ErrorKind::Auth | ErrorKind::CrossSlot);
      if fatal || !self.retry.more_after(timed) || cancel.is_set() {
        return Err(last);
      }
      if watch.is_none() {
        watch = resources::watch(store, keys);
      }
      if let Some(w) = &watch {
        w.holder_expires(expires);
      }
      let pause = tokio::time::sleep(self.retry.pause());
      tokio::pin!(pause);
      loop {
        tokio::select! {
          _ = &mut pause => break,
          _ = cancel.wake.notified() => return Err(last),
          _ = watch::freed(watch.as_ref()) => {}
        }
        // Woken early: one attempt now, on the same timer.
        attempts += 1;
        let token = fresh_token()?;
        let expires = match resources::acquire(store, keys, &token, ttl).await {
          Attempt::Won(v) => return Ok((v, attempts, token)),
          Attempt::HeldUntil(at) => Some(at),
          // Still held (or not reachable): back to the timer, which a cancel also ends.
          Attempt::Held | Attempt::Failed(_) => None,
        };
        if let Some(w) = &watch {
          w.holder_expires(expires);
        }
      }
    }
  }

  /// Records a won lease and starts watching its expiry.
  pub(super) fn hold(
    &self,
    keys: Resources,
    token: String,
    v: Validity,
    attempts: u32,
    handoffs: u32,
  ) -> Lease {
    let lock_id = LockId::next();
    // Filed while the lock is in `held`, so the watcher always finds it there.
    let mut held = self.held.lock();
    let expiry = self
      .expiries
      .add(v.expires_at, lock_id, || self.watch_expiries());
    held.insert(
      lock_id,
      Held {
        keys,
        token: token.clone(),
        valid_until: v.valid_until,
        expires_at: v.expires_at,
        expiry,
        handoffs,
        releasing: false,
      },
    );
    drop(held);
    Lease {
      lock_id,
      token,
      expiration: clock::epoch_ms(v.valid_until),
      attempts,
      fence: v.fence,
    }
  }

  /// Extends until a quorum agrees, the key is found lost, the retry budget is spent, or
  /// the old validity ends (after which the lock may be someone else's).
  pub(super) async fn run_extend(
    &self,
    store: &S,
    keys: &Resources,
    token: &str,
    ttl: Duration,
    valid_until: Instant,
  ) -> Result<Validity, Error> {
    let mut attempts = 0u32;
    loop {
      attempts += 1;
      let causes = match resources::extend(store, keys, token, ttl).await {
        Attempt::Won(v) => return Ok(v),
        Attempt::Held | Attempt::HeldUntil(_) => return Err(Error::expired()),
        Attempt::Failed(causes) => causes,
      };
      let now = Instant::now();
      if now >= valid_until {
        return Err(Error::expired());
      }
      if !self.retry.more_after(attempts) {
        return Err(Error::unavailable(attempts, causes));
      }
      tokio::time::sleep(self.retry.pause().min(valid_until - now)).await;
    }
  }
}

pub(super) fn fresh_token() -> Result<String, Error> {
  token::remote_token_hex()
    .map_err(|e| Error::internal(format!("no OS randomness for a token: {e}")))
}
