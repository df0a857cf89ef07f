//! Redlock decisions over fake nodes.

use parking_lot::Mutex;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ops::{Op, Reply};
use super::{Endpoint, Redlock};
use crate::core::{runtime, CauseKind, Key};
use crate::remote::{Attempt, Store};

/// How long anything may take before the test fails: a failure bound, never a pace.
const BOUND: Duration = Duration::from_secs(2);
/// What "without waiting for the hung node" means: far below its 10 s.
const PROMPT: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(10);
const DRIFT: f64 = 0.01;

struct NodeState {
  label: String,
  /// The reply to every op but `Release`.
  reply: Reply,
  /// The reply to `Release`.
  release: Reply,
  delay: Duration,
  /// Never answers (in time): sleeps 10 s.
  hang: bool,
  ops: Mutex<Vec<Op>>,
}

/// A scripted node; clones share its log.
#[derive(Clone)]
struct FakeNode(Arc<NodeState>);

impl FakeNode {
  fn new(label: &str, reply: Reply) -> Self {
    FakeNode(Arc::new(NodeState {
      label: label.into(),
      release: Reply::Yes,
      reply,
      delay: Duration::ZERO,
      hang: false,
      ops: Mutex::new(Vec::new()),
    }))
  }

  fn yes(label: &str) -> Self {
    Self::new(label, Reply::Yes)
  }

  fn no(label: &str) -> Self {
    Self::new(label, Reply::No)
  }

  fn failed(label: &str) -> Self {
    let node = Self::new(label, Reply::Failed(CauseKind::Refused, "refused".into()));
    node.with(|s| s.release = s.reply.clone())
  }

  fn hung(label: &str) -> Self {
    Self::new(label, Reply::Yes).with(|s| s.hang = true)
  }

  fn delayed(self, d: Duration) -> Self {
    self.with(|s| s.delay = d)
  }

  fn with(self, f: impl FnOnce(&mut NodeState)) -> Self {
    let mut state = Arc::try_unwrap(self.0).unwrap_or_else(|_| panic!("node shared already"));
    f(&mut state);
    FakeNode(Arc::new(state))
  }

  fn releases(&self) -> Vec<String> {
    self
      .0
      .ops
      .lock()
      .iter()
      .filter_map(|op| match op {
        Op::Release { token, .. } => Some(token.clone()),
        _ => None,
      })
      .collect()
  }

  fn op_count(&self) -> usize {
    self.0.ops.lock().len()
  }
}

impl Endpoint for FakeNode {
  fn label(&self) -> &str {
    &self.0.label
  }

  fn call(&self, op: Op) -> impl Future<Output = Reply> + Send + use<> {
    let is_release = matches!(op, Op::Release { .. });
    // Logged when called, as a real node queues the command when called.
    self.0.ops.lock().push(op);
    let me = self.clone();
    async move {
      if me.0.hang {
        tokio::time::sleep(Duration::from_secs(10)).await;
        return Reply::Failed(CauseKind::Timeout, "timed out".into());
      }
      if !me.0.delay.is_zero() {
        tokio::time::sleep(me.0.delay).await;
      }
      if is_release {
        me.0.release.clone()
      } else {
        me.0.reply.clone()
      }
    }
  }
}

/// A Redlock over clones of `nodes` (the test keeps the originals to read their logs).
fn redlock(nodes: &[FakeNode]) -> Redlock<FakeNode> {
  Redlock::new(nodes.to_vec(), DRIFT, Duration::from_millis(500))
}

/// Runs `f` on the I/O runtime, as the manager does; fails after `BOUND`.
fn run<F: Future>(f: F) -> (F::Output, Duration) {
  let start = Instant::now();
  let out = runtime::runtime().block_on(async {
    tokio::time::timeout(BOUND, f)
      .await
      .expect("no decision within the bound")
  });
  (out, start.elapsed())
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
  let deadline = Instant::now() + BOUND;
  while !cond() {
    assert!(Instant::now() < deadline, "not within {BOUND:?}: {what}");
    std::thread::sleep(Duration::from_millis(1));
  }
}

fn labels(causes: &[crate::core::Cause]) -> Vec<&str> {
  let mut l: Vec<&str> = causes.iter().map(|c| c.node.as_str()).collect();
  l.sort_unstable();
  l
}

const K: &[u8] = b"key";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_quorum_of_yes_wins_without_waiting_for_a_hung_node() {
  let nodes = [
    FakeNode::yes("a:1"),
    FakeNode::yes("b:1"),
    FakeNode::hung("c:1"),
  ];
  let r = redlock(&nodes);
  let (attempt, took) = run(r.try_acquire(&key(), TOKEN, TTL));
  assert!(took < PROMPT, "waited {took:?}");
  match attempt {
    Attempt::Won(v) => {
      assert!(v.valid_until > Instant::now());
      assert!(v.expires_at >= v.valid_until);
      assert_eq!(v.fence, None);
    }
    other => panic!("expected Won, got {other:?}"),
  }
  // One op each for the nodes that decided (the hung one may not even have been asked).
  for n in &nodes[..2] {
    assert_eq!(n.op_count(), 1, "{} got {:?}", n.label(), n.0.ops.lock());
  }
}

#[test]
fn a_minority_of_yes_is_held_and_taken_back() {
  let nodes = [
    FakeNode::yes("a:1"),
    FakeNode::no("b:1"),
    FakeNode::no("c:1"),
  ];
  let r = redlock(&nodes);
  let (attempt, _) = run(r.try_acquire(&key(), TOKEN, TTL));
  assert_eq!(attempt, Attempt::Held);
  for n in &nodes {
    eventually("a release reached every node", || n.releases().len() == 1);
    assert_eq!(n.releases(), vec![TOKEN.to_string()]);
  }
}

#[test]
fn every_node_failing_is_failed_with_a_cause_per_node() {
  let nodes = [
    FakeNode::failed("a:1"),
    FakeNode::failed("b:1"),
    FakeNode::failed("c:1"),
  ];
  let r = redlock(&nodes);
  let (attempt, _) = run(r.try_acquire(&key(), TOKEN, TTL));
  let Attempt::Failed(causes) = attempt else {
    panic!("expected Failed, got {attempt:?}");
  };
  assert_eq!(labels(&causes), ["a:1", "b:1", "c:1"]);
  assert!(
    causes.iter().all(|c| c.kind == CauseKind::Refused),
    "{causes:?}"
  );
}

#[test]
fn failed_and_hung_nodes_are_all_named_the_hung_one_as_a_timeout() {
  let nodes = [
    FakeNode::failed("a:1"),
    FakeNode::failed("b:1"),
    FakeNode::hung("c:1"),
  ];
  let r = redlock(&nodes);
  let (attempt, took) = run(r.try_acquire(&key(), TOKEN, TTL));
  assert!(took < PROMPT, "waited {took:?}");
  let Attempt::Failed(causes) = attempt else {
    panic!("expected Failed, got {attempt:?}");
  };
  assert_eq!(labels(&causes), ["a:1", "b:1", "c:1"]);
  let kind_of = |l: &str| causes.iter().find(|c| c.node == l).unwrap().kind;
  assert_eq!(kind_of("a:1"), CauseKind::Refused);
  assert_eq!(kind_of("c:1"), CauseKind::Timeout);
}

#[test]
fn a_win_that_took_longer_than_the_ttl_is_not_won_and_is_taken_back() {
  let d = Duration::from_millis(20);
  let nodes = [
    FakeNode::yes("a:1").delayed(d),
    FakeNode::yes("b:1").delayed(d),
    FakeNode::yes("c:1").delayed(d),
  ];
  let r = redlock(&nodes);
  let (attempt, _) = run(r.try_acquire(&key(), TOKEN, Duration::from_millis(10)));
  assert_eq!(attempt, Attempt::Held, "the validity had passed");
  for n in &nodes {
    eventually("a release reached every node", || n.releases().len() == 1);
  }
}

#[test]
fn extend_refused_by_a_quorum_is_held() {
  let nodes = [
    FakeNode::no("a:1"),
    FakeNode::no("b:1"),
    FakeNode::yes("c:1"),
  ];
  let r = redlock(&nodes);
  let (attempt, _) = run(r.try_extend(&key(), TOKEN, TTL));
  assert_eq!(attempt, Attempt::Held);
}

#[test]
fn extend_agreed_by_a_quorum_wins_despite_a_hung_node() {
  let nodes = [
    FakeNode::yes("a:1"),
    FakeNode::hung("b:1"),
    FakeNode::yes("c:1"),
  ];
  let r = redlock(&nodes);
  let (attempt, took) = run(r.try_extend(&key(), TOKEN, TTL));
  assert!(took < PROMPT, "waited {took:?}");
  assert!(matches!(attempt, Attempt::Won(_)), "{attempt:?}");
}

#[test]
fn release_resolves_once_a_quorum_answered_even_with_a_hung_node() {
  let nodes = [
    FakeNode::yes("a:1"),
    FakeNode::yes("b:1"),
    FakeNode::hung("c:1"),
  ];
  let r = redlock(&nodes);
  let ((), took) = run(r.release(&key(), TOKEN, Instant::now()));
  assert!(took < PROMPT, "waited {took:?}");
  for n in &nodes {
    eventually("a release reached every node", || n.releases().len() == 1);
    assert_eq!(n.releases(), vec![TOKEN.to_string()]);
  }
}

#[test]
fn inspect_with_a_quorum_of_no_is_free() {
  let nodes = [
    FakeNode::no("a:1"),
    FakeNode::no("b:1"),
    FakeNode::hung("c:1"),
  ];
  let r = redlock(&nodes);
  let (seen, took) = run(r.inspect(&key()));
  assert_eq!(seen, Ok(false));
  assert!(took < PROMPT, "waited {took:?}");
}

#[test]
fn inspect_with_a_quorum_of_yes_is_held() {
  let nodes = [
    FakeNode::yes("a:1"),
    FakeNode::yes("b:1"),
    FakeNode::no("c:1"),
  ];
  let r = redlock(&nodes);
  assert_eq!(run(r.inspect(&key())).0, Ok(true));
}

#[test]
fn inspect_decides_once_a_quorum_answered_even_with_a_hung_node() {
  let nodes = [
    FakeNode::yes("a:1"),
    FakeNode::no("b:1"),
    FakeNode::hung("c:1"),
  ];
  let r = redlock(&nodes);
  let (seen, took) = run(r.inspect(&key()));
  assert_eq!(seen, Ok(true));
  assert!(took < PROMPT, "waited {took:?}");
}

#[test]
fn inspect_with_a_quorum_failing_is_the_causes() {
  let nodes = [
    FakeNode::failed("a:1"),
    FakeNode::yes("b:1"),
    FakeNode::failed("c:1"),
  ];
  let r = redlock(&nodes);
  let (seen, _) = run(r.inspect(&key()));
  let causes = seen.expect_err("no quorum answered");
  assert_eq!(labels(&causes), ["a:1", "c:1"]);
}

#[test]
fn transfer_with_a_quorum_passes_the_key() {
  let nodes = [
    FakeNode::yes("a:1"),
    FakeNode::yes("b:1"),
    FakeNode::hung("c:1"),
  ];
  let r = redlock(&nodes);
  let (v, took) = run(r.try_transfer(&key(), TOKEN, "to", TTL, 0));
  assert!(v.is_some());
  assert!(took < PROMPT, "waited {took:?}");
}

#[test]
fn a_partial_transfer_is_undone_for_the_new_token() {
  // The refusals come later, so the round surely counts the yes.
  let d = Duration::from_millis(20);
  let nodes = [
    FakeNode::yes("a:1"),
    FakeNode::no("b:1").delayed(d),
    FakeNode::no("c:1").delayed(d),
  ];
  let r = redlock(&nodes);
  let (v, _) = run(r.try_transfer(&key(), TOKEN, "to", TTL, 0));
  assert_eq!(v, None);
  // Queued on every node before try_transfer returns, so it runs before whatever the
  // caller sends next on the same connections.
  let released = nodes.iter().filter(|n| !n.releases().is_empty()).count();
  assert_eq!(released, 3, "only {released} nodes released");
  for n in &nodes {
    eventually("a release reached every node", || n.releases().len() == 1);
    assert_eq!(n.releases(), vec!["to".to_string()], "{}", n.label());
  }
}

#[test]
fn a_single_node_decides_alone() {
  let r = redlock(&[FakeNode::no("solo:1")]);
  assert_eq!(run(r.try_acquire(&key(), TOKEN, TTL)).0, Attempt::Held);
  let r = redlock(&[FakeNode::yes("solo:1")]);
  assert!(matches!(
    run(r.try_acquire(&key(), TOKEN, TTL)).0,
    Attempt::Won(_)
  ));
}

fn key() -> Key {
  K.into()
}

#[test]
fn the_fence_is_the_quorums_largest_and_the_other_nodes_are_raised_to_it() {
  let nodes = [
    FakeNode::new("a:1", Reply::Fenced(5)),
    FakeNode::new("b:1", Reply::Fenced(9)),
    FakeNode::new("c:1", Reply::Fenced(7)),
  ];
  let r = redlock(&nodes);
  let (attempt, _) = run(r.try_acquire(&key(), TOKEN, TTL));
  let Attempt::Won(v) = attempt else {
    panic!("expected Won, got {attempt:?}");
  };
  // The round is decided at quorum: the fence is the largest of the votes counted.
  assert!(
    v.fence == Some(9) || v.fence == Some(7) || v.fence == Some(5),
    "{:?}",
    v.fence
  );
  let fence = v.fence.unwrap();
  // Told the fence: every node but the one that drew it (its counter is there already).
  for (n, drew) in nodes.iter().zip([5, 9, 7]) {
    let told = if drew == fence { vec![] } else { vec![fence] };
    assert_eq!(raised(n), told, "{}", n.label());
  }
}

#[test]
fn nodes_whose_counters_agree_are_not_raised() {
  let nodes = [
    FakeNode::new("a:1", Reply::Fenced(8)),
    FakeNode::new("b:1", Reply::Fenced(8)),
    FakeNode::new("c:1", Reply::Fenced(8)),
  ];
  let r = redlock(&nodes);
  let (attempt, _) = run(r.try_acquire(&key(), TOKEN, TTL));
  let Attempt::Won(v) = attempt else {
    panic!("expected Won, got {attempt:?}");
  };
  assert_eq!(v.fence, Some(8));
  // Only a node not heard before the round was decided is told (the fake answers in
  // order, so at most the third).
  let told: usize = nodes.iter().map(|n| raised(n).len()).sum();
  assert!(told <= 1, "{told} nodes told a fence they drew");
  assert!(raised(&nodes[0]).is_empty() && raised(&nodes[1]).is_empty());
}

fn raised(n: &FakeNode) -> Vec<u64> {
  n.0
    .ops
    .lock()
    .iter()
    .filter_map(|op| match op {
      Op::RaiseFence { fence, .. } => Some(*fence),
      _ => None,
    })
    .collect()
}

#[test]
fn one_node_needs_no_raise() {
  let nodes = [FakeNode::new("a:1", Reply::Fenced(42))];
  let r = redlock(&nodes);
  let (attempt, _) = run(r.try_acquire(&key(), TOKEN, TTL));
  let Attempt::Won(v) = attempt else {
    panic!("expected Won, got {attempt:?}");
  };
  assert_eq!(v.fence, Some(42));
  assert_eq!(nodes[0].op_count(), 1);
}

#[test]
fn a_transfer_a_node_refused_deletes_the_old_token_there() {
  // The third node refused (someone waits there, or it was not reached): it may still hold
  // the old token, which nobody would ever release.
  let nodes = [
    FakeNode::new("a:1", Reply::Fenced(5)),
    FakeNode::new("b:1", Reply::Fenced(6)),
    FakeNode::no("c:1"),
  ];
  let r = redlock(&nodes);
  let (v, _) = run(r.try_transfer(&key(), TOKEN, "to", TTL, 8));
  assert!(v.is_some());
  eventually_each(&nodes, |n| n.releases().contains(&TOKEN.to_string()));
}

/// Waits until `cond` holds for every node (ops are queued asynchronously).
fn eventually_each(nodes: &[FakeNode], cond: impl Fn(&FakeNode) -> bool) {
  let end = Instant::now() + BOUND;
  while !nodes.iter().all(&cond) {
    assert!(Instant::now() < end, "not within {BOUND:?}");
    std::thread::sleep(Duration::from_millis(1));
  }
}
