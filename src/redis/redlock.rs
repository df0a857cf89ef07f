//! Redlock over N independent masters, as redis.io specifies it: every node at once, a
//! decision as soon as the quorum outcome is known (a hung node never holds an attempt
//! past the per-node timeout), elapsed time on a monotonic clock, success only with
//! `votes ≥ quorum` and `ttl − elapsed − drift > 0`, and our token taken back from every
//! node after a failed attempt. Retries are the manager's (`remote::RetryPolicy`).

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ops::{Op, Reply};

use crate::core::{Cause, CauseKind, Key};
use crate::remote::{Attempt, KeyWatch, Resources, Validity, WatchState};

/// A node as Redlock sees it: a name for messages and a way to run one operation.
pub trait Endpoint: Send + Sync + 'static {
  fn label(&self) -> &str;
  /// Queues `op` on the node's connection when called (so operations sent one after the
  /// other reach the node in that order); the future is its reply.
  fn call(&self, op: Op) -> impl Future<Output = Reply> + Send + use<Self>;
  /// Whether every operation sent so far has finished (answered or failed).
  fn idle(&self) -> bool {
    true
  }

  /// Whether the JS thread drives the node's connection (see `Store::on_js_thread`).
  fn on_js_thread(&self) -> bool {
    false
  }

  /// Where to tell this node's connection failures and recoveries.
  fn set_reporter(&self, _r: crate::remote::Reporter) {}

  /// Fires `state` when `key` may have been freed on this node; the function returned
  /// stops that. `None`: the node cannot tell.
  fn watch(&self, _key: &[u8], _state: Arc<WatchState>) -> Option<Unwatch> {
    None
  }
}

/// Stops one node's watch.
pub type Unwatch = Box<dyn FnOnce() + Send + Sync>;

pub struct Redlock<E: Endpoint> {
  pub(super) nodes: Vec<Arc<E>>,
  pub(super) quorum: usize,
  drift_factor: f64,
  /// Whether acquisitions draw fences (`lockOptions.fencing`).
  pub(super) fencing: bool,
  /// How late a node still out when a round was decided may yet run its command.
  node_timeout: Duration,
}

/// When a round has its outcome.
#[derive(Clone, Copy)]
pub(super) enum Decide {
  /// A quorum said yes, or too many did not for a quorum to say yes.
  Votes,
  /// A quorum answered (yes or no), or too many failed for a quorum to answer.
  Answers,
}

/// The votes of one round.
#[derive(Default)]
pub(super) struct Tally {
  pub yes: usize,
  pub causes: Vec<Cause>,
  /// Every node answered (none may still run the command later).
  pub all_heard: bool,
  /// The nodes that answered yes or no, by index.
  pub answered: Vec<usize>,
  /// The nodes that answered no, by index.
  pub refused: Vec<usize>,
  /// The fence each yes vote drew, by node index.
  pub drawn: Vec<(usize, u64)>,
}

impl Tally {
  /// The largest fence among the yes votes.
  pub fn fence(&self) -> Option<u64> {
    self.drawn.iter().map(|&(_, f)| f).max()
  }

  /// How many nodes answered no.
  pub fn no(&self) -> usize {
    self.refused.len()
  }
}

/// How long a failed round waits for the nodes still out, so its causes name them all.
const STRAGGLER_GRACE: Duration = Duration::from_millis(25);

impl<E: Endpoint> Redlock<E> {
  pub fn new(nodes: Vec<E>, drift_factor: f64, node_timeout: Duration) -> Self {
    Redlock {
      quorum: nodes.len() / 2 + 1,
      nodes: nodes.into_iter().map(Arc::new).collect(),
      drift_factor,
      fencing: true,
      node_timeout,
    }
  }

  /// Without fences, acquiring one key is a plain `SET NX PX` (see `Op::Acquire`).
  pub fn fencing(mut self, on: bool) -> Self {
    self.fencing = on;
    self
  }

  /// node-redlock's drift: `driftFactor × ttl + 2` ms (Redis expires with 1 ms precision).
  fn drift(&self, ttl: Duration) -> Duration {
    Duration::from_millis((self.drift_factor * ttl.as_millis() as f64).round() as u64 + 2)
  }

  /// The validity of a round that started at `start` and won: ours until start + ttl −
  /// drift; gone from every node by the reply + ttl (each node that answered counted its
  /// PX from when the command arrived, before its reply did), plus a node timeout when
  /// some node had not answered yet (it may still run the command).
  pub(super) fn validity(&self, start: Instant, ttl: Duration, t: &Tally) -> Option<Validity> {
    let valid_until = start + ttl.saturating_sub(self.drift(ttl));
    let replied = Instant::now();
    let late = if t.all_heard {
      Duration::ZERO
    } else {
      self.node_timeout
    };
    (replied < valid_until).then(|| Validity {
      valid_until,
      expires_at: replied + ttl + Duration::from_millis(2) + late,
      fence: t.fence(),
    })
  }

  /// Sends `op` to every node at once and stops as soon as the quorum outcome is known
  /// either way. When no quorum answered, every node is accounted for in the causes:
  /// stragglers get a short grace, then count as not having answered in time.
  pub(super) async fn round(&self, op: impl Fn() -> Op) -> Tally {
    self.round_until(Decide::Votes, op).await
  }

  pub(super) async fn round_until(&self, decide: Decide, op: impl Fn() -> Op) -> Tally {
    let n = self.nodes.len();
    let mut pending: FuturesUnordered<_> = self
      .nodes
      .iter()
      .enumerate()
      .map(|(i, node)| {
        let reply = node.call(op());
        async move { (i, reply.await) }
      })
      .collect();
    let mut t = Tally::default();
    let mut heard = vec![false; n];
    let mut count = |t: &mut Tally, i: usize, reply: Reply| {
      heard[i] = true;
      if matches!(reply, Reply::Yes | Reply::Fenced(_) | Reply::No) {
        t.answered.push(i);
      }
      match reply {
        Reply::Yes => t.yes += 1,
        Reply::Fenced(f) => {
          t.yes += 1;
          t.drawn.push((i, f));
        }
        Reply::No => t.refused.push(i),
        Reply::Failed(kind, message) => t.causes.push(Cause {
          node: self.nodes[i].label().to_string(),
          kind,
          message,
        }),
        Reply::Value(v) => t.causes.push(Cause {
          node: self.nodes[i].label().to_string(),
          kind: CauseKind::Server,
          message: format!("unexpected reply {v:?}"),
        }),
      }
    };
    while let Some((i, reply)) = pending.next().await {
      count(&mut t, i, reply);
      let decided = match decide {
        Decide::Votes => t.yes >= self.quorum || n - t.yes - pending.len() > n - self.quorum,
        Decide::Answers => t.yes + t.no() >= self.quorum || t.causes.len() > n - self.quorum,
      };
      if decided {
        break;
      }
    }
    if t.yes + t.no() < self.quorum && !pending.is_empty() {
      let grace = tokio::time::sleep(STRAGGLER_GRACE);
      tokio::pin!(grace);
      loop {
        tokio::select! {
          next = pending.next() => match next {
            Some((i, reply)) => count(&mut t, i, reply),
            None => break,
          },
          _ = &mut grace => break,
        }
      }
      for (i, node) in self.nodes.iter().enumerate() {
        if !heard[i] {
          t.causes.push(Cause {
            node: node.label().to_string(),
            kind: CauseKind::Timeout,
            message: "no reply before the attempt was decided".into(),
          });
        }
      }
    }
    t.all_heard = pending.is_empty();
    t
  }

  /// Takes back a failed attempt's token: a compare-and-delete queued on every node, and
  /// awaited on the nodes that answered the attempt (they are up: one round trip), not on
  /// the others (a paused node would hold the caller a node timeout). What is queued runs
  /// before anything the caller sends next on the same connection; but a connection that
  /// timed out is replaced, and a delete on the new one can reach the server before the
  /// attempt's SET still buffered on the old one. So a delete that failed is sent again
  /// until `until` (when the attempt's keys expire anyway). That is safe because every
  /// attempt has a token of its own: a late delete can remove nothing but this attempt's.
  pub(super) async fn take_back(
    &self,
    keys: &Resources,
    token: &str,
    answered: &[usize],
    until: Instant,
  ) {
    let mut replies = Vec::new();
    for (i, node) in self.nodes.iter().enumerate() {
      let reply = node.call(Op::Release {
        keys: keys.clone(),
        token: token.to_owned(),
        retry_until: Some(until),
        notify: false,
      });
      if answered.contains(&i) {
        replies.push(reply);
      }
    }
    futures_util::future::join_all(replies).await;
  }

  /// When whatever an attempt started at `start` set with `ttl` is gone from every node:
  /// a node counts the ttl from when the command arrived, no later than a node timeout
  /// after we sent it.
  pub(super) fn attempt_expiry(&self, start: Instant, ttl: Duration) -> Instant {
    start + ttl + self.node_timeout
  }

  /// Over N nodes, tells every node the fence the quorum gave (its largest): the next
  /// quorum may share only one node with this one, and must still draw above it. Sent
  /// without waiting, long before this lock can expire. Best effort: a node that misses
  /// it and restarts without persistence falls back on its clock (`scripts::ACQUIRE`).
  /// A node whose vote for one key drew that very fence has its counter there already
  /// (`Tally::drawn`): once the nodes' counters agree, only those not heard yet are told.
  pub(super) fn raise_fence(&self, keys: &Resources, t: &Tally) {
    let Some(fence) = t.fence().filter(|_| self.nodes.len() > 1) else {
      return;
    };
    for (i, node) in self.nodes.iter().enumerate() {
      if keys.single().is_some() && t.drawn.contains(&(i, fence)) {
        continue;
      }
      for key in keys.keys() {
        drop(node.call(Op::RaiseFence {
          key: key.clone(),
          fence,
        }));
      }
    }
  }

  /// Releases everywhere and resolves once a quorum answered, or every node's first try
  /// ended. A node that could not be reached sends the delete again by itself until
  /// `until`, when the key expires anyway.
  pub(super) async fn release_everywhere(&self, keys: Resources, token: &str, until: Instant) {
    let mut replies: FuturesUnordered<_> = self
      .nodes
      .iter()
      .map(|node| {
        node.call(Op::Release {
          keys: keys.clone(),
          token: token.to_owned(),
          retry_until: Some(until),
          notify: true,
        })
      })
      .collect();
    let mut answered = 0;
    while answered < self.quorum {
      match replies.next().await {
        Some(Reply::Failed(..)) => {}
        Some(_) => answered += 1,
        None => break,
      }
    }
  }

  /// One attempt on one key or several (all or nothing on each node).
  pub(super) async fn acquire(&self, keys: Resources, token: &str, ttl: Duration) -> Attempt {
    let ttl_ms = ttl.as_millis() as u64;
    let start = Instant::now();
    let tally = self
      .round(|| Op::Acquire {
        keys: keys.clone(),
        token: token.to_owned(),
        ttl_ms,
        fence: self.fencing,
      })
      .await;
    if tally.yes >= self.quorum {
      if let Some(mut v) = self.validity(start, ttl, &tally) {
        if self.fencing {
          self.raise_fence(&keys, &tally);
        } else {
          v.fence = None;
        }
        return Attempt::Won(v);
      }
    }
    if !self.fencing {
      // What the script does when the key is held: other processes' local handoffs give
      // way to us for a while (`scripts::WAITING_MS`). (Several keys took the script.)
      if let Some(key) = keys.single() {
        for &i in &tally.refused {
          drop(self.nodes[i].call(Op::MarkWaiting { key: key.clone() }));
        }
      }
    }
    // Partial or late: take back whatever we set, everywhere, before the caller goes on.
    if tally.yes > 0 || tally.yes + tally.no() < self.nodes.len() {
      let until = self.attempt_expiry(start, ttl);
      self.take_back(&keys, token, &tally.answered, until).await;
    }
    if tally.yes + tally.no() >= self.quorum {
      Attempt::Held
    } else {
      Attempt::Failed(tally.causes)
    }
  }

  pub(super) async fn extend(&self, keys: Resources, token: &str, ttl: Duration) -> Attempt {
    let ttl_ms = ttl.as_millis() as u64;
    let start = Instant::now();
    let tally = self
      .round(|| Op::Extend {
        keys: keys.clone(),
        token: token.to_owned(),
        ttl_ms,
      })
      .await;
    if tally.yes >= self.quorum {
      if let Some(v) = self.validity(start, ttl, &tally) {
        return Attempt::Won(v);
      }
    }
    if tally.no() > self.nodes.len() - self.quorum {
      Attempt::Held
    } else {
      Attempt::Failed(tally.causes)
    }
  }

  /// A watch on every node for every key: any of them telling a key was freed wakes the
  /// waiter.
  pub(super) fn watch_keys(&self, keys: &[Key]) -> Option<KeyWatch> {
    let state = Arc::new(WatchState::default());
    let stops: Vec<Unwatch> = self
      .nodes
      .iter()
      .flat_map(|n| keys.iter().map(move |k| (n, k)))
      .filter_map(|(n, k)| n.watch(k, state.clone()))
      .collect();
    if stops.is_empty() {
      return None;
    }
    Some(KeyWatch::new(
      state,
      Box::new(move || stops.into_iter().for_each(|stop| stop())),
    ))
  }
}
