//! Cross-process wake-up on one node: a pub/sub connection, opened when the first waiter
//! needs it and shared by every key this manager waits on. A waiter's key is watched on
//! two channels: ours, which our unlock publishes to (`freed_channel`), and the key's
//! keyspace channel, which tells `del` / `expired` when the server has keyspace events on
//! (so node-redlock's unlocks and plain expiries wake us too). A lost connection is opened
//! again, and on every (re)connect all watches fire once: notices may have been missed.

use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

use super::conn::Source;
use crate::core::runtime;
use crate::remote::WatchState;

const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// How often an idle subscription is checked to be alive (a paused server is found).
const PING_EVERY: Duration = Duration::from_secs(2);

/// The channel our unlock publishes to when it frees `key`.
pub fn freed_channel(key: &[u8]) -> Vec<u8> {
  let mut c = b"oxlock:freed:".to_vec();
  c.extend_from_slice(key);
  c
}

type Watches = Vec<(u64, Arc<WatchState>)>;

enum Change {
  Subscribe(Vec<u8>),
  Unsubscribe(Vec<u8>),
}

pub struct Subscriber {
  source: Source,
  timeout: Duration,
  /// `__keyspace@<db>__:`
  keyspace_prefix: Vec<u8>,
  /// Watches by channel.
  watches: Mutex<HashMap<Vec<u8>, Watches>>,
  next_id: Mutex<u64>,
  changes: Mutex<Option<mpsc::UnboundedSender<Change>>>,
  task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Subscriber {
  pub fn new(source: Source, timeout: Duration) -> Arc<Subscriber> {
    let db = source.db();
    Arc::new(Subscriber {
      source,
      timeout,
      keyspace_prefix: format!("__keyspace@{db}__:").into_bytes(),
      watches: Mutex::new(HashMap::new()),
      next_id: Mutex::new(0),
      changes: Mutex::new(None),
      task: Mutex::new(None),
    })
  }

  /// Watches `key` for `state`; the returned function stops it.
  pub fn watch(
    self: &Arc<Self>,
    key: &[u8],
    state: Arc<WatchState>,
  ) -> impl FnOnce() + Send + Sync {
    let mut keyspace = self.keyspace_prefix.clone();
    keyspace.extend_from_slice(key);
    let channels = [freed_channel(key), keyspace];
    let id = {
      let mut n = self.next_id.lock();
      *n += 1;
      *n
    };
    {
      let mut w = self.watches.lock();
      for c in &channels {
        let list = w.entry(c.clone()).or_default();
        if list.is_empty() {
          // Fires the watch once the server confirms the subscription.
          self.change(Change::Subscribe(c.clone()));
        } else {
          // Listening already (or about to be): the key may have been freed just before.
          state.freed();
        }
        list.push((id, state.clone()));
      }
    }
    // After the watch is in the map: a task that just stopped for being idle is restarted.
    self.start();
    let me = Arc::downgrade(self);
    move || {
      let Some(me) = me.upgrade() else { return };
      let mut w = me.watches.lock();
      for c in channels {
        if let Some(list) = w.get_mut(&c) {
          list.retain(|(i, _)| *i != id);
          if list.is_empty() {
            w.remove(&c);
            me.change(Change::Unsubscribe(c));
          }
        }
      }
    }
  }

  fn change(&self, c: Change) {
    if let Some(tx) = &*self.changes.lock() {
      let _ = tx.send(c);
    }
  }

  fn start(self: &Arc<Self>) {
    let mut task = self.task.lock();
    if task.is_none() {
      let (tx, rx) = mpsc::unbounded_channel();
      *self.changes.lock() = Some(tx);
      *task = Some(
        runtime::runtime()
          .spawn(run(Arc::downgrade(self), rx))
          .abort_handle(),
      );
    }
  }

  pub fn stop(&self) {
    if let Some(t) = self.task.lock().take() {
      t.abort();
    }
  }

  /// Nobody waits: the connection closes (the next watch opens it again). Decided under
  /// the task's lock, which `start` takes before a new watch subscribes.
  fn stop_if_idle(&self) -> bool {
    let mut task = self.task.lock();
    if !self.watches.lock().is_empty() {
      return false;
    }
    *task = None;
    *self.changes.lock() = None;
    true
  }

  fn wake(&self, channel: &[u8], payload: &[u8]) {
    let keyspace = channel.starts_with(&self.keyspace_prefix);
    // Keyspace events tell every write; only these free the key.
    let frees = matches!(
      payload,
      b"del" | b"expired" | b"evicted" | b"unlink" | b"subscribed"
    );
    if keyspace && !frees {
      return;
    }
    if let Some(list) = self.watches.lock().get(channel) {
      for (_, w) in list {
        w.freed();
      }
    }
  }

  fn wake_all(&self) {
    for list in self.watches.lock().values() {
      for (_, w) in list {
        w.freed();
      }
    }
  }

  fn channels(&self) -> Vec<Vec<u8>> {
    self.watches.lock().keys().cloned().collect()
  }
}

impl Drop for Subscriber {
  fn drop(&mut self) {
    self.stop();
  }
}

async fn run(me: Weak<Subscriber>, mut changes: mpsc::UnboundedReceiver<Change>) {
  let mut backoff = RECONNECT_MIN;
  loop {
    let Some(s) = me.upgrade() else { return };
    let (source, timeout) = (s.source.clone(), s.timeout);
    drop(s);
    let connected = tokio::time::timeout(timeout, async {
      source.client().await?.get_async_pubsub().await
    })
    .await;
    if let Ok(Ok(pubsub)) = connected {
      let (mut sink, mut stream) = pubsub.split();
      // What is watched now; later changes arrive through `changes`.
      while changes.try_recv().is_ok() {}
      let channels = me.upgrade().map(|s| s.channels()).unwrap_or_default();
      let subscribed = channels.is_empty()
        || matches!(
          tokio::time::timeout(timeout, sink.subscribe(&channels)).await,
          Ok(Ok(()))
        );
      if subscribed {
        backoff = RECONNECT_MIN;
        if let Some(s) = me.upgrade() {
          s.wake_all();
        }
        loop {
          tokio::select! {
            msg = stream.next() => match (msg, me.upgrade()) {
              (Some(m), Some(s)) => {
                let channel: Vec<u8> = m.get_channel().unwrap_or_default();
                s.wake(&channel, m.get_payload_bytes());
              }
              _ => break,
            },
            change = changes.recv() => {
              let done = match &change {
                Some(Change::Subscribe(c)) => tokio::time::timeout(timeout, sink.subscribe(c)).await,
                Some(Change::Unsubscribe(c)) => tokio::time::timeout(timeout, sink.unsubscribe(c)).await,
                None => return,
              };
              if !matches!(done, Ok(Ok(()))) {
                break;
              }
              if let (Some(Change::Subscribe(c)), Some(s)) = (change, me.upgrade()) {
                s.wake(&c, b"subscribed");
              }
            }
            _ = tokio::time::sleep(PING_EVERY) => {
              if me.upgrade().is_none_or(|s| s.stop_if_idle()) {
                return;
              }
              if !matches!(tokio::time::timeout(timeout, sink.ping::<String>()).await, Ok(Ok(_))) {
                break;
              }
            }
          }
        }
      }
    }
    tokio::time::sleep(backoff).await;
    backoff = (backoff * 2).min(RECONNECT_MAX);
  }
}
