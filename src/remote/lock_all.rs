//! A multi-resource lock: every key at once, or none. The request takes the keys' local
//! gates one after the other in their canonical order (sorted), its place in the first
//! key's queue decided when `lock()` is called, the next key's once it has the one before:
//! it never holds a later key while it waits for an earlier one, so it cannot deadlock with
//! callers that nest single locks in the same order. With every gate, it makes
//! all-or-nothing attempts on the store (`Store::try_acquire_all`). It is never handed on
//! as it is: a previous local holder's token is released first, and its own unlock
//! releases every key and opens every queue.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

use super::gate::Baton;
use super::manager::{Cancel, RemoteManager};
use super::resources::{self, Resources};
use super::Store;
use crate::core::{Error, ErrorKind, Outcome, RequestId};

type Turn = oneshot::Receiver<Option<Baton>>;

/// The keys' gates this request owns: left when dropped (a panic included).
struct GatesOwned<'a, S: Store> {
  manager: &'a RemoteManager<S>,
  keys: &'a Resources,
  owned: Vec<bool>,
}

impl<S: Store> Drop for GatesOwned<'_, S> {
  fn drop(&mut self) {
    for (key, owned) in self.keys.keys().iter().zip(&self.owned) {
      if *owned {
        self.manager.gates.leave(key, None);
      }
    }
  }
}

impl<S: Store> RemoteManager<S> {
  pub(super) fn start_lock_all(&self, keys: Resources, ttl: Duration) -> Result<RequestId, Error> {
    if keys.single().is_none() && !S::MULTI {
      return Err(Error::new(
        ErrorKind::Unsupported,
        "this store has no multi-resource locks: lock the keys one by one, or use the redis store",
      ));
    }
    let Some(me) = self.me.upgrade().filter(|_| self.store().is_some()) else {
      return Ok(self.spawn(None, async { Outcome::Failed(Error::destroyed()) }));
    };
    let first = self.gates.enter(keys.first());
    let cancel = Arc::new(Cancel::default());
    let c = cancel.clone();
    Ok(self.spawn(Some(cancel), async move {
      me.run_lock_all(keys, ttl, first, c).await
    }))
  }

  async fn run_lock_all(
    self: Arc<Self>,
    keys: Resources,
    ttl: Duration,
    first: Option<Turn>,
    cancel: Arc<Cancel>,
  ) -> Outcome {
    let mut owned = vec![false; keys.keys().len()];
    owned[0] = first.is_none(); // taken when lock() was called
    let mut gates = GatesOwned {
      manager: &self,
      keys: &keys,
      owned,
    };
    let batons = match self.take_gates(&mut gates, first, &cancel).await {
      Ok(b) => b,
      Err(e) => return Outcome::Failed(e),
    };
    let Some(store) = self.store() else {
      for (i, b) in batons {
        gates.owned[i] = false;
        self.pass_on(&keys.keys()[i], Some(b));
      }
      return Outcome::Failed(Error::destroyed());
    };
    // Tokens of earlier local holders of some keys: gone before an attempt can win.
    let releases = batons
      .iter()
      .map(|(i, b)| store.release(&keys.keys()[*i], &b.token, b.expires_at));
    futures_util::future::join_all(releases).await;
    if cancel.is_set() {
      return Outcome::Failed(Error::busy(0));
    }
    match self.attempts(&*store, &keys, ttl, &cancel).await {
      Ok((v, _, token)) if cancel.is_set() => {
        resources::release(&*store, &keys, &token, v.expires_at).await;
        Outcome::Failed(Error::busy(0))
      }
      Ok((v, attempts, token)) => {
        gates.owned.iter_mut().for_each(|o| *o = false); // the lease owns them now
        Outcome::Locked(self.hold(keys.clone(), token, v, attempts, 0))
      }
      Err(e) => Outcome::Failed(e),
    }
  }

  /// Takes every key's gate in order, within one retry budget: the first key's turn was
  /// queued by `lock()`, each later key is entered once the one before is ours. Returns the
  /// batons that came with the turns (by key index). On a cancel or when the budget runs
  /// out, a turn that came meanwhile is passed on, the gates taken are left (by `gates`),
  /// and one look at the store tells busy from unavailable.
  async fn take_gates(
    &self,
    gates: &mut GatesOwned<'_, S>,
    first: Option<Turn>,
    cancel: &Cancel,
  ) -> Result<Vec<(usize, Baton)>, Error> {
    let budget = async {
      match self.retry.local_wait() {
        Some(w) => tokio::time::sleep(w).await,
        None => std::future::pending().await,
      }
    };
    tokio::pin!(budget);
    let mut batons = Vec::new();
    let mut first = first;
    let mut gave_up = false;
    for i in 0..gates.keys.keys().len() {
      let turn = match i {
        0 => first.take(),
        _ => self.gates.enter(&gates.keys.keys()[i]),
      };
      let Some(mut turn) = turn else {
        gates.owned[i] = true;
        continue;
      };
      let got = tokio::select! {
        r = &mut turn => r.ok(),
        _ = cancel.wake.notified() => None,
        _ = &mut budget => None,
      };
      match got {
        Some(b) => {
          gates.owned[i] = true;
          batons.extend(b.map(|b| (i, b)));
        }
        None => {
          self.abandon_turn(gates, i, turn);
          gave_up = true;
          break;
        }
      }
    }
    if !gave_up {
      return Ok(batons);
    }
    // Batons of the turns that came: their tokens are released with the gates.
    for (i, b) in batons {
      gates.owned[i] = false;
      self.pass_on(&gates.keys.keys()[i], Some(b));
    }
    let Some(store) = self.store().filter(|_| !cancel.is_set()) else {
      return Err(Error::busy(0));
    };
    let attempts = self.retry.all_attempts();
    Err(match resources::inspect(&*store, gates.keys).await {
      Ok(_) => Error::busy(attempts),
      Err(causes) => Error::failed(attempts, causes),
    })
  }

  /// Leaves one key's queue; a turn that came just now is passed on.
  fn abandon_turn(&self, gates: &GatesOwned<'_, S>, i: usize, mut turn: Turn) {
    turn.close();
    if let Ok(b) = turn.try_recv() {
      self.pass_on(&gates.keys.keys()[i], b);
    }
  }
}
