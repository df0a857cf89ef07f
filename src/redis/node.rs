//! One Redis master: a multiplexed connection that reconnects by itself, and a writer
//! that sends every request queued at the moment it runs as one pipeline (one write),
//! without waiting for earlier batches: a lone request goes out at once, a burst of
//! requests shares writes. Each request is bounded by the per-node timeout.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use super::cluster::ClusterConn;
use super::conn::{client, Conn, Source};
use super::encode;
use super::js_conn::JsConn;
use super::ops::{describe, is_noscript, judge, Op, Reply};
use super::redlock::{Endpoint, Unwatch};
use super::sentinel::{SentinelConn, Sentinels};
use super::subscriber::Subscriber;
use crate::config::RedisNode;
use crate::core::{runtime, CauseKind, Error, ErrorKind, Inbox, Spawner};
use crate::remote::{Health, Reporter, WatchState};

struct Job {
  op: Op,
  /// None for a release sent again: its caller has its first answer already.
  reply: Option<oneshot::Sender<Reply>>,
  /// Counts the job as in flight until it is dropped (answered or failed).
  _in_flight: InFlight,
}

/// One job of a node that has not finished yet (see `Node::idle`).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
  fn new(count: &Arc<AtomicUsize>) -> Self {
    count.fetch_add(1, Ordering::AcqRel);
    InFlight(count.clone())
  }
}

impl Drop for InFlight {
  fn drop(&mut self) {
    self.0.fetch_sub(1, Ordering::AcqRel);
  }
}

impl Job {
  fn answer(&mut self, reply: Reply) {
    if let Some(tx) = self.reply.take() {
      let _ = tx.send(reply);
    }
  }
}

/// How long a node waits before it sends a release that found it unreachable again.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The most requests one write carries.
const MAX_BATCH: usize = 512;

pub struct Node {
  /// `host:port` (never credentials): how errors name the node.
  label: String,
  source: Source,
  timeout: Duration,
  /// Opened when a waiter first needs it.
  subscriber: std::sync::OnceLock<Arc<Subscriber>>,
  health: Arc<Health>,
  jobs: mpsc::UnboundedSender<Job>,
  /// Jobs queued or on the wire (a release nobody awaits any more included).
  in_flight: Arc<AtomicUsize>,
  /// Whether the JS thread drives its connection (`JsConn`).
  on_js_thread: bool,
}

impl Node {
  /// Connects lazily: a node that is down now is retried on every later operation. With
  /// `js`, a plain host and port gets a connection the JS thread of that inbox drives, and
  /// the node's own tasks run there.
  pub fn new(
    cfg: &RedisNode,
    timeout: Duration,
    connect_timeout: Duration,
    js: Option<&Inbox>,
  ) -> Result<Node, Error> {
    let config_error = |e: redis::RedisError| {
      Error::new(
        ErrorKind::Config,
        format!("{}: {}", cfg.label, describe(&e).1),
      )
    };
    let rt = runtime::runtime();
    let (source, conn) = if cfg.sentinel.is_some() {
      let s = Arc::new(Sentinels::new(cfg, timeout, connect_timeout)?);
      (
        Source::Sentinel(s.clone()),
        Conn::Sentinel(SentinelConn::new(s)),
      )
    } else if cfg.cluster.is_some() {
      let c = ClusterConn::new(cfg, timeout, connect_timeout)?;
      (Source::of(cfg, timeout, connect_timeout)?, Conn::Cluster(c))
    } else if let Some((client, conn)) = js.and_then(|inbox| {
      let client = client(cfg).ok()?;
      let conn = JsConn::new(
        cfg,
        &client,
        inbox.io.clone(),
        connect_timeout.as_millis() as u32,
      )?;
      Some((client, conn))
    }) {
      (Source::Direct(Box::new(client)), Conn::Js(conn))
    } else {
      let client = client(cfg)?;
      let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
      let conn = {
        let _guard = rt.enter();
        ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(config_error)?
      };
      (Source::Direct(Box::new(client)), Conn::Direct(conn))
    };
    let on_js_thread = matches!(conn, Conn::Js(_));
    let servername = cfg.tls.as_ref().is_some_and(|t| t.servername.is_some())
      || cfg
        .cluster
        .iter()
        .flatten()
        .any(|s| s.tls.as_ref().is_some_and(|t| t.servername.is_some()));
    if servername && !on_js_thread {
      return Err(Error::new(
        ErrorKind::Config,
        format!(
          "{}: tls.servername is supported on a plain host and port only, through Lock.create() (not with sentinels, a cluster, the CLI, a compatibility entry point or OXLOCK_IO=thread)",
          cfg.label
        ),
      ));
    }
    let (jobs, rx) = mpsc::unbounded_channel();
    let health = Health::new(&cfg.label);
    let spawner = match js {
      Some(inbox) if on_js_thread => Spawner::Local(inbox.exec.clone()),
      _ => Spawner::Runtime,
    };
    spawner.clone().detach(write_batches(
      rx,
      Writer {
        again: jobs.downgrade(),
        conn,
        timeout,
        health: health.clone(),
        spawner,
      },
    ));
    Ok(Node {
      label: cfg.label.clone(),
      source,
      timeout: connect_timeout + timeout,
      subscriber: std::sync::OnceLock::new(),
      health,
      jobs,
      in_flight: Arc::new(AtomicUsize::new(0)),
      on_js_thread,
    })
  }
}

impl Endpoint for Node {
  fn label(&self) -> &str {
    &self.label
  }

  fn on_js_thread(&self) -> bool {
    self.on_js_thread
  }

  fn idle(&self) -> bool {
    self.in_flight.load(Ordering::Acquire) == 0
  }

  fn set_reporter(&self, r: Reporter) {
    self.health.set_reporter(r);
  }

  fn watch(&self, key: &[u8], state: Arc<WatchState>) -> Option<Unwatch> {
    let s = self
      .subscriber
      .get_or_init(|| Subscriber::new(self.source.clone(), self.timeout));
    Some(Box::new(s.watch(key, state)))
  }

  fn call(&self, op: Op) -> impl Future<Output = Reply> + Send + use<> {
    let (reply, answer) = oneshot::channel();
    let sent = self
      .jobs
      .send(Job {
        op,
        reply: Some(reply),
        _in_flight: InFlight::new(&self.in_flight),
      })
      .is_ok();
    async move {
      if !sent {
        return Reply::Failed(CauseKind::Closed, "closed".into());
      }
      // The writer always answers within the node timeout; a dropped sender means shutdown.
      answer
        .await
        .unwrap_or_else(|_| Reply::Failed(CauseKind::Closed, "closed".into()))
    }
  }
}

/// What a node's writer and its batches share.
#[derive(Clone)]
struct Writer {
  again: mpsc::WeakUnboundedSender<Job>,
  conn: Conn,
  timeout: Duration,
  health: Arc<Health>,
  /// Where the writer's tasks run: the JS thread for a `JsConn`.
  spawner: Spawner,
}

/// Ends when the node is dropped (every sender gone); the connection closes with it.
async fn write_batches(mut rx: mpsc::UnboundedReceiver<Job>, w: Writer) {
  while let Some(first) = rx.recv().await {
    // Let every task that is ready run first (tokio would run us next, from its LIFO
    // slot; the JS thread's executor runs its queue in order): what they queue meanwhile
    // joins this write. With nothing else ready this returns at once, so a lone request
    // is not held back.
    tokio::task::yield_now().await;
    let mut batch = vec![first];
    let most = if w.conn.batches() { MAX_BATCH } else { 1 };
    while batch.len() < most {
      match rx.try_recv() {
        Ok(job) => batch.push(job),
        Err(_) => break,
      }
    }
    // The first poll puts the pipeline on the connection, here, in queue order: commands
    // reach the server in the order they were queued (a clean-up never overtakes the
    // command it cleans up), which spawned tasks alone would not guarantee. The rest, the
    // wait for the replies, runs as a task of its own.
    let mut send = Box::pin(send_batch(batch, w.clone()));
    if futures_util::poll!(send.as_mut()).is_pending() {
      w.spawner.detach(send);
    }
  }
}

async fn send_batch(batch: Vec<Job>, mut w: Writer) {
  let (timeout, sent) = (w.timeout, Instant::now());
  let replies = tokio::time::timeout(timeout, query(&batch, &mut w.conn)).await;
  match replies {
    Ok(Ok(values)) if values.len() == batch.len() => {
      w.health.ok();
      for (mut job, value) in batch.into_iter().zip(values) {
        if is_noscript(&value) {
          if !job.op.takes_key() {
            w.spawner.detach(run_script(job, w.clone()));
            continue;
          }
          // Sent by EVALSHA on a socket that had carried its source: the server's scripts
          // were flushed. Loaded and sent again, it could run after the attempt's
          // take-back: the attempt fails instead, and the next one carries the source.
          if let Conn::Js(c) = &w.conn {
            c.forget_known();
          }
          job.answer(Reply::Failed(
            CauseKind::Server,
            "NOSCRIPT: the server's scripts were flushed".into(),
          ));
        } else {
          let reply = judge(&job.op, &value);
          if matches!(reply, Reply::Failed(..)) {
            retry_later(&job, &w);
          }
          job.answer(reply);
        }
      }
    }
    Ok(Ok(_)) => fail_all(
      batch,
      CauseKind::Server,
      "unexpected reply count".into(),
      &w,
    ),
    Ok(Err(e)) => {
      let (kind, why) = describe(&e);
      w.health.failed(kind, &why);
      fail_all(batch, kind, why, &w)
    }
    Err(_) => {
      w.conn.timed_out(sent, &no_reply(timeout));
      w.health.failed(CauseKind::Timeout, &no_reply(timeout));
      fail_all(batch, CauseKind::Timeout, no_reply(timeout), &w)
    }
  }
}

/// The batch's replies, error replies among them as values. A connection the JS thread
/// drives gets the commands as RESP written at once (`encode.rs`); the others a pipeline.
async fn query(batch: &[Job], conn: &mut Conn) -> redis::RedisResult<Vec<Value>> {
  if let Conn::Js(c) = conn {
    let mut bytes = Vec::with_capacity(256 * batch.len());
    let mut known = c.known();
    for job in batch {
      encode::encode(&job.op, &mut bytes, &mut known);
    }
    return c.request(&bytes, batch.len(), known).await;
  }
  let mut pipe = redis::pipe();
  pipe.ignore_errors();
  for job in batch {
    job.op.write(&mut pipe);
  }
  pipe.query_async::<Vec<Value>>(conn).await
}

/// A release that could not reach the node goes out again after a pause, while its key
/// may still hold our token: an unlock sent during a pause or a reconnect is not lost.
fn retry_later(job: &Job, w: &Writer) {
  let Op::Release {
    retry_until: Some(until),
    ..
  } = &job.op
  else {
    return;
  };
  if Instant::now() + RETRY_PAUSE >= *until {
    return;
  }
  let (op, again) = (job.op.clone(), w.again.clone());
  let in_flight = InFlight(job._in_flight.0.clone());
  in_flight.0.fetch_add(1, Ordering::AcqRel);
  w.spawner.detach(async move {
    tokio::time::sleep(RETRY_PAUSE).await;
    if let Some(tx) = again.upgrade() {
      let _ = tx.send(Job {
        op,
        reply: None,
        _in_flight: in_flight,
      });
    }
  });
}

/// One script call through redis-rs's EVALSHA-then-load path.
async fn run_script(mut job: Job, mut w: Writer) {
  let Some((script, keys, args)) = job.op.script() else {
    job.answer(Reply::Failed(CauseKind::Server, "NOSCRIPT".into()));
    return;
  };
  let (timeout, sent) = (w.timeout, Instant::now());
  let fut = async {
    let mut inv = script.prepare_invoke();
    inv.key(keys).arg(args);
    inv.invoke_async::<Value>(&mut w.conn).await
  };
  let reply = match tokio::time::timeout(timeout, fut).await {
    Ok(Ok(v)) => judge(&job.op, &v),
    Ok(Err(e)) => {
      let (kind, why) = describe(&e);
      Reply::Failed(kind, why)
    }
    Err(_) => {
      w.conn.timed_out(sent, &no_reply(timeout));
      Reply::Failed(CauseKind::Timeout, no_reply(timeout))
    }
  };
  if matches!(reply, Reply::Failed(..)) {
    retry_later(&job, &w);
  }
  job.answer(reply);
}

fn no_reply(timeout: Duration) -> String {
  format!("no reply within {} ms", timeout.as_millis())
}

fn fail_all(batch: Vec<Job>, kind: CauseKind, why: String, w: &Writer) {
  for mut job in batch {
    retry_later(&job, w);
    job.answer(Reply::Failed(kind, why.clone()));
  }
}
