use super::*;
use crate::core::{Event, Inbox, LockId, ManagerId, WaiterId, Wake};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts wake-ups and forwards them, so tests can wait for the timer thread.
struct ChannelWake(Mutex<mpsc::Sender<()>>);

impl Wake for ChannelWake {
  fn wake(&self) {
    let _ = self.0.lock().unwrap().send(());
  }
}

fn owner(_manager: u64) -> (Owner, mpsc::Receiver<()>) {
  let _ = start_timer();
  let manager = ManagerId::next();
  let (tx, rx) = mpsc::channel();
  let inbox = Arc::new(Inbox::new(Box::new(ChannelWake(Mutex::new(tx)))));
  (Owner { inbox, manager }, rx)
}

const TTL: Duration = Duration::from_secs(10);
const FOREVER: Option<Duration> = None;

fn granted(a: Acquire) -> LockId {
  match a {
    Acquire::Granted(id) => id,
    other => panic!("expected a grant, got {other:?}"),
  }
}

fn queued(a: Acquire) -> WaiterId {
  match a {
    Acquire::Queued(id) => id,
    other => panic!("expected to queue, got {other:?}"),
  }
}

#[test]
fn uncontended_lock_and_unlock_leave_no_state() {
  let t = Table::new();
  let (o, _rx) = owner(1);
  let id = granted(t.acquire(b"k", TTL, FOREVER, &o));
  assert!(t.is_locked(b"k"));
  assert_eq!(t.release(id, &o.inbox), None);
  assert!(!t.is_locked(b"k"));
  assert_eq!(t.key_count(), 0);
  // A second release of the same id is a no-op.
  assert_eq!(t.release(id, &o.inbox), None);
}

#[test]
fn busy_when_the_caller_may_not_wait() {
  let t = Table::new();
  let (o, _rx) = owner(1);
  granted(t.acquire(b"k", TTL, FOREVER, &o));
  assert_eq!(
    t.acquire(b"k", TTL, Some(Duration::ZERO), &o),
    Acquire::Busy
  );
}

#[test]
fn waiters_are_served_in_arrival_order_inline_on_the_same_thread() {
  let t = Table::new();
  let (o, _rx) = owner(1);
  let mut holder = granted(t.acquire(b"k", TTL, FOREVER, &o));
  let waiters: Vec<WaiterId> = (0..5)
    .map(|_| queued(t.acquire(b"k", TTL, FOREVER, &o)))
    .collect();
  for w in waiters {
    let next = t.release(holder, &o.inbox).expect("handed off inline");
    assert_eq!(next, w.granted());
    holder = next;
  }
  assert_eq!(t.release(holder, &o.inbox), None);
  assert_eq!(t.key_count(), 0);
}

#[test]
fn a_waiter_on_another_thread_is_notified_through_its_inbox() {
  let t = Table::new();
  let (a, _rxa) = owner(1);
  let (b, rxb) = owner(2);
  let holder = granted(t.acquire(b"k", TTL, FOREVER, &a));
  let w = queued(t.acquire(b"k", TTL, FOREVER, &b));
  assert_eq!(t.release(holder, &a.inbox), None);
  rxb.recv_timeout(Duration::from_secs(2)).expect("woken");
  assert_eq!(b.inbox.drain(), vec![Event::Granted(w)]);
}

#[test]
fn ttl_expiry_hands_the_key_to_the_next_waiter() {
  let t = Table::new();
  let (a, _rxa) = owner(1);
  let (b, rxb) = owner(2);
  let start = Instant::now();
  let stale = granted(t.acquire(b"k", Duration::from_millis(50), FOREVER, &a));
  let w = queued(t.acquire(b"k", TTL, FOREVER, &b));
  rxb
    .recv_timeout(Duration::from_secs(2))
    .expect("woken at expiry");
  assert!(start.elapsed() >= Duration::from_millis(45));
  assert_eq!(b.inbox.drain(), vec![Event::Granted(w)]);
  // The stale holder can neither release nor extend the new holder's lock.
  assert_eq!(t.release(stale, &a.inbox), None);
  assert!(!t.extend(stale, TTL));
  assert!(t.is_locked(b"k"));
  assert!(t.extend(w.granted(), TTL));
}

#[test]
fn a_waiter_whose_budget_runs_out_leaves_the_queue() {
  let t = Table::new();
  let (o, rx) = owner(1);
  let holder = granted(t.acquire(b"k", TTL, FOREVER, &o));
  let w = queued(t.acquire(b"k", TTL, Some(Duration::from_millis(30)), &o));
  rx.recv_timeout(Duration::from_secs(2))
    .expect("woken at the deadline");
  assert_eq!(o.inbox.drain(), vec![Event::TimedOut(w)]);
  // Nobody is left to hand off to.
  assert_eq!(t.release(holder, &o.inbox), None);
  assert_eq!(t.key_count(), 0);
}

#[test]
fn mixed_budgets_time_out_in_deadline_order() {
  let t = Table::new();
  let (o, rx) = owner(1);
  granted(t.acquire(b"k", TTL, FOREVER, &o));
  let long = queued(t.acquire(b"k", TTL, Some(Duration::from_millis(400)), &o));
  let short = queued(t.acquire(b"k", TTL, Some(Duration::from_millis(20)), &o));
  rx.recv_timeout(Duration::from_secs(2))
    .expect("first timeout");
  assert_eq!(o.inbox.drain(), vec![Event::TimedOut(short)]);
  rx.recv_timeout(Duration::from_secs(2))
    .expect("second timeout");
  assert_eq!(o.inbox.drain(), vec![Event::TimedOut(long)]);
}

#[test]
fn cancel_removes_a_waiter_at_once() {
  let t = Table::new();
  let (o, _rx) = owner(1);
  let holder = granted(t.acquire(b"k", TTL, FOREVER, &o));
  let w1 = queued(t.acquire(b"k", TTL, FOREVER, &o));
  let w2 = queued(t.acquire(b"k", TTL, FOREVER, &o));
  assert!(t.cancel(w1));
  assert!(!t.cancel(w1));
  assert_eq!(t.release(holder, &o.inbox), Some(w2.granted()));
  // A holder cannot be cancelled, and a waiter cannot release.
  assert!(!t.cancel(w2));
}

#[test]
fn extend_with_a_shorter_ttl_hands_off_sooner() {
  let t = Table::new();
  let (a, _rxa) = owner(1);
  let (b, rxb) = owner(2);
  let h = granted(t.acquire(b"k", TTL, FOREVER, &a));
  let w = queued(t.acquire(b"k", TTL, FOREVER, &b));
  assert!(t.extend(h, Duration::from_millis(30)));
  rxb
    .recv_timeout(Duration::from_secs(2))
    .expect("handed off at the new expiry");
  assert_eq!(b.inbox.drain(), vec![Event::Granted(w)]);
}

#[test]
fn removing_an_owner_passes_its_keys_on_and_drops_its_waiters() {
  let t = Table::new();
  let (a, _rxa) = owner(1);
  let (b, rxb) = owner(2);
  granted(t.acquire(b"k", TTL, FOREVER, &a));
  queued(t.acquire(b"k", TTL, FOREVER, &a));
  let wb = queued(t.acquire(b"k", TTL, FOREVER, &b));
  let gone = a.manager;
  t.remove_owners(|o| o.manager == gone);
  rxb
    .recv_timeout(Duration::from_secs(2))
    .expect("b gets the key");
  assert_eq!(b.inbox.drain(), vec![Event::Granted(wb)]);
  assert_eq!(t.key_count(), 1);
}

#[test]
fn a_closed_inbox_is_skipped_at_handoff() {
  let t = Table::new();
  let (a, _rxa) = owner(1);
  let (dead, _rxd) = owner(2);
  let h = granted(t.acquire(b"k", TTL, FOREVER, &a));
  queued(t.acquire(b"k", TTL, FOREVER, &dead));
  let w = queued(t.acquire(b"k", TTL, FOREVER, &a));
  dead.inbox.close();
  assert_eq!(t.release(h, &a.inbox), Some(w.granted()));
}

#[test]
fn expired_unawaited_holders_are_swept_as_the_table_grows() {
  let t = Table::new();
  let (o, _rx) = owner(1);
  for i in 0..100 {
    granted(t.acquire(
      format!("old{i}").as_bytes(),
      Duration::from_millis(1),
      FOREVER,
      &o,
    ));
  }
  std::thread::sleep(Duration::from_millis(5));
  for i in 0..3000 {
    granted(t.acquire(format!("new{i}").as_bytes(), TTL, FOREVER, &o));
  }
  assert_eq!(t.key_count(), 3000, "expired keys were swept");
}

#[test]
fn a_destroyed_table_refuses_new_locks() {
  let t = Table::new();
  let (o, _rx) = owner(1);
  let id = granted(t.acquire(b"k", TTL, FOREVER, &o));
  t.destroy();
  assert_eq!(t.acquire(b"k", TTL, FOREVER, &o), Acquire::Destroyed);
  assert_eq!(t.release(id, &o.inbox), None);
}
