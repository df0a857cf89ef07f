//! RemoteManager over the fake store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};

use super::fake::{FakeStore, INJECTED_PANIC, NODE};
use super::{RemoteApi, RemoteManager};
use crate::config::RetryPolicy;
use crate::core::{CauseKind, Error, ErrorKind, Event, Inbox, Lease, Outcome, RequestId, Wake};

/// How long any outcome may take before the test fails: a failure bound, never a pace.
const BOUND: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(10);

/// Waiters may queue up to 2 s (a failure bound) before they give up.
const PATIENT: RetryPolicy = RetryPolicy {
  count: 200,
  delay_ms: 10.0,
  jitter_ms: 0.0,
};

/// Forwards the inbox's wake-ups, so a test can wait for outcomes.
struct ChanWake(mpsc::Sender<()>);

impl Wake for ChanWake {
  fn wake(&self) {
    let _ = self.0.send(());
  }
}

/// Keeps the injected panic of the fake store out of the test output.
fn silence_injected_panics() {
  static ONCE: Once = Once::new();
  ONCE.call_once(|| {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
      let p = info.payload();
      let text = p
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str));
      if text != Some(INJECTED_PANIC) {
        prev(info);
      }
    }));
  });
}

fn key(s: &str) -> Arc<[u8]> {
  s.as_bytes().into()
}

/// Polls `cond` until it holds, for at most `BOUND`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
  let deadline = Instant::now() + BOUND;
  while !cond() {
    assert!(Instant::now() < deadline, "not within {BOUND:?}: {what}");
    std::thread::sleep(Duration::from_millis(1));
  }
}

fn calls(c: &AtomicUsize) -> usize {
  c.load(Ordering::SeqCst)
}

struct Harness {
  store: FakeStore,
  m: Arc<RemoteManager<FakeStore>>,
  inbox: Arc<Inbox>,
  wakes: mpsc::Receiver<()>,
  /// Outcomes drained and not yet taken by a test.
  settled: HashMap<RequestId, Outcome>,
  /// The manager's signals (`lost`, `error`, `reconnect`), in the order drained.
  signals: Vec<crate::core::Signal>,
  /// Every request that settled, in the order drained.
  order: Vec<RequestId>,
}

impl Harness {
  fn new(retry: RetryPolicy) -> Self {
    let (tx, wakes) = mpsc::channel();
    let inbox = Arc::new(Inbox::new(Box::new(ChanWake(tx))));
    let store = FakeStore::default();
    let m = RemoteManager::new(store.clone(), retry, inbox.clone(), BOUND);
    Harness {
      store,
      m,
      inbox,
      wakes,
      settled: HashMap::new(),
      signals: Vec::new(),
      order: Vec::new(),
    }
  }

  fn collect(&mut self) {
    for e in self.inbox.drain() {
      let (req, outcome) = match e {
        Event::Settled(req, outcome) => (req, outcome),
        Event::Signal(s) => {
          self.signals.push(s);
          continue;
        }
        other => panic!("unexpected event {other:?}"),
      };
      assert!(!self.order.contains(&req), "{req:?} settled twice");
      self.order.push(req);
      self.settled.insert(req, outcome);
    }
  }

  fn settled_yet(&mut self, req: RequestId) -> bool {
    self.collect();
    self.order.contains(&req)
  }

  fn wait(&mut self, req: RequestId) -> Outcome {
    let deadline = Instant::now() + BOUND;
    loop {
      self.collect();
      if let Some(o) = self.settled.remove(&req) {
        return o;
      }
      assert!(!self.order.contains(&req), "{req:?} was taken already");
      let Some(left) = deadline.checked_duration_since(Instant::now()) else {
        panic!("no outcome for {req:?} within {BOUND:?}");
      };
      let _ = self.wakes.recv_timeout(left);
    }
  }

  fn locked(&mut self, req: RequestId) -> Lease {
    match self.wait(req) {
      Outcome::Locked(lease) => lease,
      other => panic!("expected Locked for {req:?}, got {other:?}"),
    }
  }

  fn failed(&mut self, req: RequestId) -> Error {
    match self.wait(req) {
      Outcome::Failed(e) => e,
      other => panic!("expected Failed for {req:?}, got {other:?}"),
    }
  }

  fn unlock(&mut self, lease: &Lease) {
    let r = self.m.unlock(lease.lock_id);
    assert_eq!(self.wait(r), Outcome::Done);
  }

  /// Nothing held or awaited, in the manager or in the store.
  fn assert_idle(&self) {
    eventually("the manager has no key", || self.m.key_count() == 0);
    eventually("the store has no key", || self.store.live_keys() == 0);
  }
}

#[test]
fn uncontended_lock_and_unlock_leave_nothing() {
  let mut h = Harness::new(PATIENT);
  let k = key("a");
  let r = h.m.lock(k.clone(), TTL);
  let lease = h.locked(r);
  assert_eq!(lease.attempts, 1);
  assert_eq!(lease.token.len(), 32);
  assert_eq!(h.store.holder(&k), Some(lease.token.clone()));
  assert!(h.m.is_locked(&k));
  assert_eq!(h.m.key_count(), 1);

  h.unlock(&lease);
  assert_eq!(h.store.holder(&k), None);
  assert!(!h.m.is_locked(&k));
  assert_eq!(h.m.key_count(), 0);
  assert_eq!(calls(&h.store.calls.acquire), 1);
  assert_eq!(calls(&h.store.calls.release), 1);
  // A second unlock of the same lock is a no-op that still ends Done.
  h.unlock(&lease);
  assert_eq!(calls(&h.store.calls.release), 1);
}

#[test]
fn five_waiters_get_the_key_in_call_order() {
  let mut h = Harness::new(PATIENT);
  let k = key("fifo");
  let reqs: Vec<RequestId> = (0..5).map(|_| h.m.lock(k.clone(), TTL)).collect();
  let mut lease = h.locked(reqs[0]);
  for i in 1..reqs.len() {
    for later in &reqs[i..] {
      assert!(!h.settled_yet(*later), "request {later:?} settled early");
    }
    assert_eq!(h.store.holder(&k), Some(lease.token.clone()));
    h.unlock(&lease);
    lease = h.locked(reqs[i]);
  }
  let lock_order: Vec<RequestId> = h
    .order
    .iter()
    .copied()
    .filter(|r| reqs.contains(r))
    .collect();
  assert_eq!(lock_order, reqs);
  h.unlock(&lease);
  h.assert_idle();
}

#[test]
fn a_local_handoff_transfers_the_key_in_one_step() {
  let mut h = Harness::new(PATIENT);
  let k = key("handoff");
  let a = h.m.lock(k.clone(), TTL);
  let b = h.m.lock(k.clone(), TTL);
  let la = h.locked(a);
  h.unlock(&la);
  let lb = h.locked(b);
  assert_ne!(la.token, lb.token);
  assert_eq!(lb.attempts, 1);
  assert_eq!(h.store.holder(&k), Some(lb.token.clone()));
  assert_eq!(calls(&h.store.calls.transfer), 1);
  assert_eq!(calls(&h.store.calls.acquire), 1, "no second SET");
  assert_eq!(
    calls(&h.store.calls.release),
    0,
    "no delete before the handoff"
  );
  h.unlock(&lb);
  assert_eq!(calls(&h.store.calls.release), 1);
  h.assert_idle();
}

#[test]
fn a_failed_transfer_falls_back_to_release_and_acquire() {
  let mut h = Harness::new(PATIENT);
  let k = key("lost");
  let a = h.m.lock(k.clone(), TTL);
  let b = h.m.lock(k.clone(), TTL);
  let la = h.locked(a);
  h.store.forget(&k); // the store lost a's key: the compare-and-set cannot match
  h.unlock(&la);
  let lb = h.locked(b);
  assert_eq!(h.store.holder(&k), Some(lb.token.clone()));
  assert_eq!(calls(&h.store.calls.transfer), 1);
  assert_eq!(
    calls(&h.store.calls.release),
    1,
    "a's token is deleted first"
  );
  assert_eq!(calls(&h.store.calls.acquire), 2);
  h.unlock(&lb);
  h.assert_idle();
}

/// Cancels `b` queued behind `a`, with `c` behind it; `settle` runs between the cancel
/// and a's unlock.
fn cancel_a_queued_request(settle: impl FnOnce()) {
  let mut h = Harness::new(PATIENT);
  let k = key("cancel");
  let a = h.m.lock(k.clone(), TTL);
  let b = h.m.lock(k.clone(), TTL);
  let c = h.m.lock(k.clone(), TTL);
  let la = h.locked(a);
  h.m.cancel(b);
  settle();
  h.unlock(&la);
  let lc = h.locked(c);
  assert_eq!(h.store.holder(&k), Some(lc.token.clone()));
  h.unlock(&lc);
  h.assert_idle();
  h.collect();
  assert!(
    !h.order.contains(&b),
    "a cancelled request delivered an outcome"
  );
}

#[test]
fn a_cancelled_waiter_leaves_the_queue_and_the_next_gets_the_key() {
  // The waiter may or may not have seen its cancel when the key is handed on: either
  // way, it must pass the key to the next waiter.
  cancel_a_queued_request(|| {});
  cancel_a_queued_request(|| std::thread::sleep(Duration::from_millis(20)));
}

#[test]
fn cancel_after_the_outcome_arrived_takes_it_back_and_releases_the_key() {
  let mut h = Harness::new(PATIENT);
  let k = key("late-cancel");
  let r = h.m.lock(k.clone(), TTL);
  // The first wake-up is r's outcome arriving in the inbox; it is not drained.
  h.wakes.recv_timeout(BOUND).expect("no outcome arrived");
  h.m.cancel(r);
  h.collect();
  assert!(!h.order.contains(&r), "the cancelled outcome was delivered");
  h.assert_idle();
  assert_eq!(calls(&h.store.calls.release), 1);
  // The key is free for the next caller.
  let again = h.m.lock(k.clone(), TTL);
  let l = h.locked(again);
  h.unlock(&l);
  h.assert_idle();
}

#[test]
fn cancel_after_the_outcome_arrived_hands_the_key_to_the_next_waiter() {
  let mut h = Harness::new(PATIENT);
  let k = key("late-cancel-queued");
  let a = h.m.lock(k.clone(), TTL);
  let b = h.m.lock(k.clone(), TTL);
  h.wakes.recv_timeout(BOUND).expect("no outcome arrived");
  h.m.cancel(a);
  let lb = h.locked(b);
  assert!(!h.order.contains(&a), "the cancelled outcome was delivered");
  assert_eq!(h.store.holder(&k), Some(lb.token.clone()));
  h.unlock(&lb);
  h.assert_idle();
}

#[test]
fn an_expired_lock_lets_the_next_local_waiter_in() {
  let mut h = Harness::new(PATIENT);
  let k = key("expiry");
  let a = h.m.lock(k.clone(), Duration::from_millis(50));
  let b = h.m.lock(k.clone(), TTL);
  let la = h.locked(a);
  // a is never unlocked.
  let lb = h.locked(b);
  assert_eq!(h.store.holder(&k), Some(lb.token.clone()));
  assert!(h.m.is_locked(&k));
  // A late unlock of the expired lock must not touch b's key.
  h.unlock(&la);
  assert_eq!(h.store.holder(&k), Some(lb.token.clone()));
  h.unlock(&lb);
  h.assert_idle();
}

#[test]
fn one_watcher_finds_a_lock_filed_before_the_others_lost_and_an_extended_one_kept() {
  let mut h = Harness::new(PATIENT);
  let (long, short, extended) = (key("w-long"), key("w-short"), key("w-ext"));
  let ll = h.m.lock(long.clone(), TTL);
  let ll = h.locked(ll);
  // Filed after a lock that ends in 10 s, it ends first: the watcher must wake for it.
  let ls = h.m.lock(short.clone(), Duration::from_millis(60));
  let _ls = h.locked(ls);
  let le = h.m.lock(extended.clone(), Duration::from_millis(80));
  let le = h.locked(le);
  let x = h.m.extend(le.lock_id, TTL).expect("refused at once");
  assert!(matches!(h.wait(x), Outcome::Extended(_)));
  let lost = |h: &mut Harness, k: &str| {
    h.collect();
    h.signals.iter().any(|s| s.name == "lost" && s.key == k)
  };
  eventually("the short lock reported lost", || lost(&mut h, "w-short"));
  assert!(!h.m.is_locked(&short));
  std::thread::sleep(Duration::from_millis(100));
  assert!(
    !lost(&mut h, "w-ext"),
    "an extended lock reported lost at its first expiry"
  );
  assert!(h.m.is_locked(&extended) && h.m.is_locked(&long));
  h.unlock(&le);
  h.unlock(&ll);
  h.assert_idle();
}

#[test]
fn an_outage_fails_every_caller_as_unavailable() {
  let retry = RetryPolicy {
    count: 2,
    delay_ms: 10.0,
    jitter_ms: 0.0,
  };
  let mut h = Harness::new(retry);
  h.store.set_down(true);
  let k = key("outage");
  let reqs: Vec<RequestId> = (0..3).map(|_| h.m.lock(k.clone(), TTL)).collect();
  for r in reqs {
    let e = h.failed(r);
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    assert_eq!(e.attempts, 3, "{e:?}");
    assert!(!e.causes.is_empty(), "{e:?}");
    for c in &e.causes {
      assert_eq!((c.node.as_str(), c.kind), (NODE, CauseKind::Refused));
    }
  }
  eventually("the manager has no key", || h.m.key_count() == 0);
}

#[test]
fn a_key_held_by_a_foreign_token_is_busy_after_every_attempt() {
  let retry = RetryPolicy {
    count: 1,
    delay_ms: 10.0,
    jitter_ms: 0.0,
  };
  let mut h = Harness::new(retry);
  let k = key("foreign");
  h.store.put(&k, "someone-else", TTL);
  let r = h.m.lock(k.clone(), TTL);
  let e = h.failed(r);
  assert_eq!(e.kind, ErrorKind::Busy, "{e:?}");
  assert_eq!(e.attempts, 2);
  assert!(e.causes.is_empty());
  assert_eq!(calls(&h.store.calls.acquire), 2);
  assert_eq!(h.store.holder(&k).as_deref(), Some("someone-else"));
  eventually("the manager has no key", || h.m.key_count() == 0);
}

#[test]
fn a_waiter_whose_budget_runs_out_is_busy_or_unavailable_as_the_store_says() {
  let retry = RetryPolicy {
    count: 1,
    delay_ms: 10.0,
    jitter_ms: 0.0,
  };
  let mut h = Harness::new(retry);
  let k = key("budget");
  let a = h.m.lock(k.clone(), TTL);
  let la = h.locked(a);

  let b = h.m.lock(k.clone(), TTL);
  let e = h.failed(b);
  assert_eq!((e.kind, e.attempts), (ErrorKind::Busy, 2), "{e:?}");
  assert_eq!(calls(&h.store.calls.inspect), 1);

  h.store.set_down(true);
  let c = h.m.lock(k.clone(), TTL);
  let e = h.failed(c);
  assert_eq!((e.kind, e.attempts), (ErrorKind::Unavailable, 2), "{e:?}");
  assert_eq!(e.causes, h.store.causes());

  h.store.set_down(false);
  assert!(h.m.is_locked(&k), "the holder is not disturbed");
  h.unlock(&la);
  h.assert_idle();
}

#[test]
fn a_panicking_attempt_settles_as_internal() {
  silence_injected_panics();
  let mut h = Harness::new(PATIENT);
  h.store.set_panic_on_acquire(true);
  let r = h.m.lock(key("panic"), TTL);
  let e = h.failed(r);
  assert_eq!(e.kind, ErrorKind::Internal, "{e:?}");
  assert!(e.message.contains(INJECTED_PANIC), "{}", e.message);
}

#[test]
fn a_panicking_attempt_does_not_wedge_the_key() {
  silence_injected_panics();
  let retry = RetryPolicy {
    count: 1,
    delay_ms: 10.0,
    jitter_ms: 0.0,
  };
  let mut h = Harness::new(retry);
  let k = key("panic-wedge");
  h.store.set_panic_on_acquire(true);
  let r = h.m.lock(k.clone(), TTL);
  assert_eq!(h.failed(r).kind, ErrorKind::Internal);
  h.store.set_panic_on_acquire(false);
  let again = h.m.lock(k.clone(), TTL);
  let l = h.locked(again);
  h.unlock(&l);
  h.assert_idle();
}

#[test]
fn destroy_during_an_attempt_gives_back_what_it_took() {
  let mut h = Harness::new(PATIENT);
  h.store.set_delay(Duration::from_millis(100));
  let k = key("destroy");
  let r = h.m.lock(k.clone(), TTL);
  eventually("the attempt started", || calls(&h.store.calls.acquire) == 1);
  let d = h.m.destroy();
  assert_eq!(h.wait(d), Outcome::Done);
  // The interrupted request settles once, and not with a lock.
  let o = h.wait(r);
  assert!(!matches!(o, Outcome::Locked(_)), "{o:?}");
  assert_eq!(h.store.live_keys(), 0, "the attempt's key was not released");
  assert!(calls(&h.store.calls.release) >= 1);

  let later = h.m.lock(k.clone(), TTL);
  assert_eq!(h.failed(later).kind, ErrorKind::Destroyed);
}

#[test]
fn destroy_releases_held_locks() {
  let mut h = Harness::new(PATIENT);
  let (k1, k2) = (key("d1"), key("d2"));
  let r1 = h.m.lock(k1.clone(), TTL);
  let r2 = h.m.lock(k2.clone(), TTL);
  let l1 = h.locked(r1);
  h.locked(r2);
  assert_eq!(h.store.live_keys(), 2);
  let d = h.m.destroy();
  assert_eq!(h.wait(d), Outcome::Done);
  assert_eq!(h.store.live_keys(), 0);
  assert!(!h.m.is_locked(&k1));
  assert_eq!(h.m.extend(l1.lock_id, TTL), None);
}

#[test]
fn extend_of_a_held_lock_and_of_a_lost_one() {
  let mut h = Harness::new(PATIENT);
  let k = key("extend");
  let r = h.m.lock(k.clone(), Duration::from_secs(1));
  let l = h.locked(r);
  let before = l.expiration;
  let x = h.m.extend(l.lock_id, TTL).expect("refused at once");
  match h.wait(x) {
    Outcome::Extended(ms) => assert!(ms > before + 5_000.0, "{ms} vs {before}"),
    other => panic!("expected Extended, got {other:?}"),
  }
  assert_eq!(calls(&h.store.calls.extend), 1);
  assert_eq!(h.store.holder(&k), Some(l.token.clone()));

  h.store.forget(&k);
  let x = h.m.extend(l.lock_id, TTL).expect("refused at once");
  assert_eq!(h.failed(x).kind, ErrorKind::Expired);
  h.unlock(&l);
  h.assert_idle();
}

#[test]
fn extend_of_an_unknown_lock_is_refused_at_once() {
  let mut h = Harness::new(PATIENT);
  let r = h.m.lock(key("x"), TTL);
  let l = h.locked(r);
  h.unlock(&l);
  assert_eq!(h.m.extend(l.lock_id, TTL), None);
}

fn watching(count: i64, delay_ms: f64) -> Harness {
  let h = Harness::new(RetryPolicy {
    count,
    delay_ms,
    jitter_ms: 0.0,
  });
  h.store.watchable.store(true, Ordering::SeqCst);
  h
}

#[test]
fn a_notice_wakes_a_waiter_long_before_its_retry_timer() {
  let mut h = watching(3, 10_000.0);
  let k = key("notice");
  h.store.put(&k, "someone-else", TTL);
  let r = h.m.lock(k.clone(), TTL);
  // The first attempt, and one when the watch starts listening (it fires once).
  eventually("the first attempts ran", || {
    calls(&h.store.calls.acquire) == 2
  });
  let t0 = Instant::now();
  h.store.release_foreign(&k);
  let lease = h.locked(r);
  assert!(
    t0.elapsed() < Duration::from_secs(5),
    "woken after {:?}, not by the notice",
    t0.elapsed()
  );
  assert_eq!(lease.attempts, 3);
  h.unlock(&lease);
  h.assert_idle();
  assert_eq!(
    h.store.live_watches(),
    0,
    "the watch is dropped with the request"
  );
}

#[test]
fn notices_do_not_use_up_the_retry_budget() {
  // One timed retry 2 s apart (room for a loaded machine to deliver all five notices
  // first); the holder takes the key back after every notice.
  let mut h = watching(1, 2000.0);
  let k = key("budget");
  h.store.put(&k, "someone-else", TTL);
  let t0 = Instant::now();
  let r = h.m.lock(k.clone(), TTL);
  for _ in 0..5 {
    let before = calls(&h.store.calls.acquire);
    std::thread::sleep(Duration::from_millis(20));
    // Freed and taken again at once: the waiter's woken attempt finds it held.
    h.store.retake_foreign(&k, "someone-else", TTL);
    eventually("the notice woke an attempt", || {
      calls(&h.store.calls.acquire) > before
    });
  }
  let e = h.failed(r);
  assert_eq!(e.kind, ErrorKind::Busy);
  assert_eq!(
    e.attempts, 2,
    "the error counts the timed attempts: retry + 1"
  );
  let made = calls(&h.store.calls.acquire);
  assert!(made >= 7, "2 timed attempts + 5 woken ones, got {made}");
  assert!(
    t0.elapsed() >= Duration::from_millis(2000),
    "the budget is time: {:?}",
    t0.elapsed()
  );
}

#[test]
fn a_waiter_tries_again_when_the_holder_expires() {
  let mut h = watching(3, 10_000.0);
  let k = key("expiry");
  h.store
    .put(&k, "crashed-holder", Duration::from_millis(150));
  let t0 = Instant::now();
  let lease = h.locked(h.m.lock(k.clone(), TTL));
  let took = t0.elapsed();
  assert!(
    took >= Duration::from_millis(140) && took < Duration::from_secs(5),
    "{took:?}"
  );
  assert_eq!(
    lease.attempts, 3,
    "the first, the watch's first, the one at expiry"
  );
  h.unlock(&lease);
}
