//! One `LISTEN` connection per store, opened when the first waiter needs it: every
//! release NOTIFYs the table's channel with the key's digest, and the listener wakes the
//! watches of that key. A lost connection is opened again; on every (re)connect all
//! watches fire once, since notices may have been missed while it was down. A paused
//! server is found by a ping, so a dead listener never goes unnoticed for long.

use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::sql::key_digest;
use crate::config::PgDatabase;
use crate::core::{runtime, Error, Key};
use crate::remote::{KeyWatch, WatchState};

const PING_EVERY: Duration = Duration::from_secs(2);
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// The watches of one key, each with its id.
type Watches = Vec<(u64, Arc<WatchState>)>;

pub struct Listener {
  config: tokio_postgres::Config,
  tls: Option<MakeRustlsConnect>,
  channel: String,
  timeout: Duration,
  /// Watches by key digest.
  watches: Mutex<HashMap<String, Watches>>,
  next_id: Mutex<u64>,
  task: Mutex<Option<tokio::task::AbortHandle>>,
  /// LISTEN is active on the connection.
  listening: std::sync::atomic::AtomicBool,
}

impl Listener {
  pub fn new(db: &PgDatabase, channel: &str, timeout: Duration) -> Result<Arc<Listener>, Error> {
    let mut config = db.config.clone();
    config.connect_timeout(timeout);
    let tls = db.tls.as_ref().map(super::tls::connector).transpose()?;
    Ok(Arc::new(Listener {
      config,
      tls,
      channel: channel.to_string(),
      timeout,
      watches: Mutex::new(HashMap::new()),
      next_id: Mutex::new(0),
      task: Mutex::new(None),
      listening: std::sync::atomic::AtomicBool::new(false),
    }))
  }

  /// A watch on `key`; starts the listening connection if it is not running.
  pub fn watch(self: &Arc<Self>, key: &Key) -> KeyWatch {
    let digest = key_digest(key);
    let state = Arc::new(WatchState::default());
    let id = {
      let mut n = self.next_id.lock();
      *n += 1;
      *n
    };
    self
      .watches
      .lock()
      .entry(digest.clone())
      .or_default()
      .push((id, state.clone()));
    self.start();
    if self.listening.load(std::sync::atomic::Ordering::Acquire) {
      // The key may have been freed between the attempt that found it held and now.
      state.freed();
    }
    let me = Arc::downgrade(self);
    KeyWatch::new(
      state,
      Box::new(move || {
        if let Some(me) = me.upgrade() {
          let mut w = me.watches.lock();
          if let Some(list) = w.get_mut(&digest) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
              w.remove(&digest);
            }
          }
        }
      }),
    )
  }

  fn start(self: &Arc<Self>) {
    let mut task = self.task.lock();
    if task.is_none() {
      let me = Arc::downgrade(self);
      *task = Some(runtime::runtime().spawn(run(me)).abort_handle());
    }
  }

  /// Stops listening (the store is being destroyed).
  pub fn stop(&self) {
    if let Some(t) = self.task.lock().take() {
      t.abort();
    }
  }

  /// Nobody waits: the connection closes (the next watch opens it again). Decided under
  /// the task's lock, which `start` takes after a new watch is in the map.
  fn stop_if_idle(&self) -> bool {
    let mut task = self.task.lock();
    if !self.watches.lock().is_empty() {
      return false;
    }
    *task = None;
    self
      .listening
      .store(false, std::sync::atomic::Ordering::Release);
    true
  }

  fn wake(&self, digest: &str) {
    if let Some(list) = self.watches.lock().get(digest) {
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

  async fn connect(&self) -> Option<(Client, mpsc::UnboundedReceiver<String>)> {
    let connecting = async {
      match &self.tls {
        None => {
          let (c, conn) = self.config.connect(NoTls).await.ok()?;
          Some((c, drive(conn)))
        }
        Some(tls) => {
          let (c, conn) = self.config.connect(tls.clone()).await.ok()?;
          Some((c, drive(conn)))
        }
      }
    };
    let (client, notes) = tokio::time::timeout(self.timeout, connecting)
      .await
      .ok()??;
    let listen = format!("LISTEN \"{}\"", self.channel);
    tokio::time::timeout(self.timeout, client.batch_execute(&listen))
      .await
      .ok()?
      .ok()?;
    Some((client, notes))
  }
}

impl Drop for Listener {
  fn drop(&mut self) {
    self.stop();
  }
}

/// Polls the connection (which is what delivers notices) and forwards their payloads.
fn drive<S, T>(mut conn: Connection<S, T>) -> mpsc::UnboundedReceiver<String>
where
  S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
  T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
  let (tx, rx) = mpsc::unbounded_channel();
  runtime::runtime().spawn(async move {
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    while let Some(Ok(m)) = messages.next().await {
      if let AsyncMessage::Notification(n) = m {
        if tx.send(n.payload().to_string()).is_err() {
          break;
        }
      }
    }
    // Dropping `tx` tells the listener the connection is gone.
  });
  rx
}

async fn run(me: Weak<Listener>) {
  let mut backoff = RECONNECT_MIN;
  loop {
    let Some(l) = me.upgrade() else { return };
    let connected = l.connect().await;
    drop(l);
    if let Some((client, mut notes)) = connected {
      backoff = RECONNECT_MIN;
      if let Some(l) = me.upgrade() {
        l.listening
          .store(true, std::sync::atomic::Ordering::Release);
        l.wake_all();
      }
      loop {
        tokio::select! {
          note = notes.recv() => match (note, me.upgrade()) {
            (Some(digest), Some(l)) => l.wake(&digest),
            _ => break,
          },
          _ = tokio::time::sleep(PING_EVERY) => {
            let Some(l) = me.upgrade() else { return };
            if l.stop_if_idle() {
              return;
            }
            let timeout = l.timeout;
            drop(l);
            match tokio::time::timeout(timeout, client.simple_query("")).await {
              Ok(Ok(_)) => {}
              _ => break,
            }
          }
        }
      }
      // `client` dropped here: its connection task ends.
      if let Some(l) = me.upgrade() {
        l.listening
          .store(false, std::sync::atomic::Ordering::Release);
      }
    }
    tokio::time::sleep(backoff).await;
    backoff = (backoff * 2).min(RECONNECT_MAX);
  }
}
