//! A node's command connection on a socket the JS thread drives (`core::js_io`): requests
//! are RESP bytes handed to the socket at the JS side's next flush, and replies are parsed
//! (by redis-rs) in the JS thread's `data` callback, which resolves the waiting request
//! there: no thread wake-up either way. Replies come in request order, so each request
//! waits in one FIFO queue. It connects when a request needs it, sends `AUTH` and `SELECT`
//! first, and a closed socket fails what waited and is opened again by the next request.
//! Timeouts are the caller's (`node::send_batch`); one that finds the socket silent all
//! along gives it up (`give_up_if_silent`).

use parking_lot::Mutex;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Instant;
use tokio::sync::oneshot;

use super::encode::Known;
use super::resp::{self, frame_len};
use crate::config::RedisNode;
use crate::core::js_io::{Io, SocketId, Stream, Target, TlsOptions};
use crate::core::CauseKind;

/// A node's connection (clones share it).
#[derive(Clone)]
pub struct JsConn(Arc<Shared>);

struct Shared {
  io: Arc<Io>,
  target: Target,
  /// `AUTH` and `SELECT`, packed, and how many replies they get.
  hello: (Vec<u8>, usize),
  db: i64,
  state: Mutex<State>,
  me: Weak<Shared>,
}

#[derive(Default)]
struct State {
  sid: Option<SocketId>,
  waiting: VecDeque<Waiter>,
  unread: Vec<u8>,
  /// Replies of `AUTH`/`SELECT` still to come: until then requests wait in `held`, as
  /// redis-rs's do, so nothing runs on a connection the server did not accept.
  hello_left: usize,
  held: Vec<u8>,
  /// When this socket last read anything; None until it first does.
  last_read: Option<Instant>,
  /// The scripts whose source this socket has carried (`encode::Known`).
  known: Known,
}

/// A request waiting for its replies: `want` in all, the first `skip` of them dropped.
struct Waiter {
  want: usize,
  skip: usize,
  got: Vec<Value>,
  /// None: a reply of the connection's own `AUTH`/`SELECT`.
  tx: Option<oneshot::Sender<RedisResult<Vec<Value>>>>,
}

impl JsConn {
  /// The connection of `cfg` on `io`, or None when the node is not a plain host and port
  /// (a Unix socket: it stays on redis-rs).
  pub fn new(
    cfg: &RedisNode,
    client: &redis::Client,
    io: Arc<Io>,
    connect_ms: u32,
  ) -> Option<Self> {
    let info = client.get_connection_info();
    let (host, port, tls) = match info.addr() {
      redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p, None),
      redis::ConnectionAddr::TcpTls {
        host,
        port,
        insecure,
        ..
      } => {
        let t = cfg.tls.clone().unwrap_or_default();
        let tls = TlsOptions {
          ca: t.ca,
          cert: t.cert,
          key: t.key,
          reject_unauthorized: !(*insecure || t.insecure),
          servername: t.servername,
        };
        (host.clone(), *port, Some(tls))
      }
      _ => return None,
    };
    let settings = info.redis_settings();
    let mut hello = redis::pipe();
    if let Some(password) = settings.password() {
      let auth = hello.cmd("AUTH");
      if let Some(user) = settings.username() {
        auth.arg(user);
      }
      auth.arg(password);
    }
    if settings.db() != 0 {
      hello.cmd("SELECT").arg(settings.db());
    }
    let target = Target {
      host: host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string(),
      port,
      tls,
      connect_ms,
    };
    Some(JsConn(Arc::new_cyclic(|me| Shared {
      io,
      target,
      hello: (hello.get_packed_pipeline(), hello.len()),
      db: settings.db(),
      state: Mutex::new(State::default()),
      me: me.clone(),
    })))
  }

  fn send(
    &self,
    bytes: &[u8],
    want: usize,
    skip: usize,
  ) -> oneshot::Receiver<RedisResult<Vec<Value>>> {
    let (tx, rx) = oneshot::channel();
    let s = &self.0;
    let mut st = s.state.lock();
    let sid = match st.sid {
      Some(sid) => sid,
      None => {
        let me: Weak<dyn Stream> = s.me.clone();
        let sid = s.io.open(me, s.target.clone());
        st.sid = Some(sid);
        st.unread.clear();
        st.held.clear();
        st.last_read = None;
        st.known = Known::default();
        st.hello_left = s.hello.1;
        if s.hello.1 > 0 {
          s.io.write(sid, &s.hello.0);
          for _ in 0..s.hello.1 {
            st.waiting.push_back(Waiter {
              want: 1,
              skip: 1,
              got: Vec::new(),
              tx: None,
            });
          }
        }
        sid
      }
    };
    if st.hello_left > 0 {
      st.held.extend_from_slice(bytes);
    } else {
      s.io.write(sid, bytes);
    }
    st.waiting.push_back(Waiter {
      want,
      skip,
      got: Vec::with_capacity(want - skip),
      tx: Some(tx),
    });
    rx
  }

  /// Sends `count` commands already written as RESP (`encode.rs`) against `known()`, which
  /// they leave at `known`; resolves their replies, error replies among them as values.
  pub fn request(
    &self,
    bytes: &[u8],
    count: usize,
    known: Known,
  ) -> impl std::future::Future<Output = RedisResult<Vec<Value>>> + Send + use<> {
    let rx = self.send(bytes, count, 0);
    self.0.state.lock().known = known;
    answer(rx)
  }

  /// The scripts the current socket has carried; none before it is open (the bytes written
  /// next open it).
  pub fn known(&self) -> Known {
    let st = self.0.state.lock();
    if st.sid.is_some() {
      st.known
    } else {
      Known::default()
    }
  }

  /// The server said `NOSCRIPT` (a `SCRIPT FLUSH`): sources go with the scripts again.
  pub fn forget_known(&self) {
    self.0.state.lock().known = Known::default();
  }
}

impl JsConn {
  /// A request sent at `sent` went unanswered. If the socket has answered before but
  /// nothing since `sent` (a paused server, a route that went silent), it is given up:
  /// what waits on it fails, and the next request opens a new socket, so a socket nobody
  /// closes cannot keep every later request waiting too. A socket that never answered is
  /// still connecting (the JS side's connect timeout bounds that), and one that answered
  /// meanwhile is only slow: both are kept, and the late reply goes to nobody.
  pub fn give_up_if_silent(&self, sent: Instant, why: &str) {
    let mut st = self.0.state.lock();
    if st.sid.is_some() && st.last_read.is_some_and(|t| t < sent) {
      self
        .0
        .fail_all(&mut st, || closed_error(CauseKind::Timeout, why), true);
    }
  }
}

async fn answer(rx: oneshot::Receiver<RedisResult<Vec<Value>>>) -> RedisResult<Vec<Value>> {
  rx.await
    .unwrap_or_else(|_| Err(closed_error(CauseKind::Closed, "connection closed")))
}

impl ConnectionLike for JsConn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    let rx = self.send(&cmd.get_packed_command(), 1, 0);
    Box::pin(async move {
      let mut values = answer(rx).await?;
      values.pop().unwrap_or(Value::Nil).extract_error()
    })
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    cmd: &'a Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    let rx = self.send(&cmd.get_packed_pipeline(), offset + count, offset);
    Box::pin(answer(rx))
  }

  fn get_db(&self) -> i64 {
    self.0.db
  }
}

/// An error redis-rs would have given for the same failure, so `ops::describe` reads both
/// kinds of connection alike.
fn closed_error(kind: CauseKind, message: &str) -> RedisError {
  use std::io::{Error, ErrorKind};
  let io = |k: ErrorKind| RedisError::from(Error::new(k, message.to_string()));
  match kind {
    CauseKind::Refused => io(ErrorKind::ConnectionRefused),
    CauseKind::Timeout => io(ErrorKind::TimedOut),
    CauseKind::Closed => io(ErrorKind::ConnectionReset),
    CauseKind::Dns => RedisError::from((
      redis::ErrorKind::Io,
      "failed to lookup address",
      message.to_string(),
    )),
    CauseKind::Tls => RedisError::from((redis::ErrorKind::Io, "TLS", message.to_string())),
    _ => io(ErrorKind::Other),
  }
}

impl Shared {
  /// Fails everything waiting and forgets the socket (closing it, unless it is gone).
  fn fail_all(&self, st: &mut State, err: impl Fn() -> RedisError, close: bool) {
    if let (Some(sid), true) = (st.sid.take(), close) {
      self.io.close(sid);
    }
    st.unread.clear();
    st.held.clear();
    st.hello_left = 0;
    for w in st.waiting.drain(..) {
      if let Some(tx) = w.tx {
        let _ = tx.send(Err(err()));
      }
    }
  }
}

/// Why a connection's bytes end it.
enum Failure {
  /// The server sent what is not a reply to us: the connection is lost to us.
  Protocol(&'static str),
  /// It refused the connection's own `AUTH` or `SELECT`.
  Setup(redis::ErrorKind, String),
}

impl Stream for Shared {
  fn data(&self, sid: SocketId, bytes: &[u8]) {
    let mut guard = self.state.lock();
    let st = &mut *guard;
    if st.sid != Some(sid) {
      return;
    }
    st.last_read = Some(Instant::now());
    st.unread.extend_from_slice(bytes);
    let mut at = 0;
    let failed = loop {
      let n = match frame_len(&st.unread[at..]) {
        Ok(Some(n)) => n,
        Ok(None) => break None,
        Err(()) => break Some(Failure::Protocol("not a RESP reply")),
      };
      let frame = &st.unread[at..at + n];
      let value = resp::parse(frame).map_or_else(|| redis::parse_redis_value(frame), Ok);
      at += n;
      let Ok(value) = value else {
        break Some(Failure::Protocol("unreadable reply"));
      };
      let Some(w) = st.waiting.front_mut() else {
        break Some(Failure::Protocol("a reply nobody asked for"));
      };
      if w.tx.is_none() {
        // The connection's own AUTH or SELECT: refused, nothing on it can work.
        if let Value::ServerError(e) = value {
          let e = RedisError::from(e);
          // AUTH goes first when there is one: refused, it is a credentials problem.
          let auth = st.hello_left == self.hello.1 && (self.hello.1 == 2 || self.db == 0);
          let kind = if auth {
            redis::ErrorKind::AuthenticationFailed
          } else {
            e.kind()
          };
          break Some(Failure::Setup(kind, e.to_string()));
        }
        st.waiting.pop_front();
        st.hello_left -= 1;
        if st.hello_left == 0 && !st.held.is_empty() {
          self.io.write(sid, &std::mem::take(&mut st.held));
        }
        continue;
      }
      if w.skip > 0 {
        w.skip -= 1;
        w.want -= 1;
      } else {
        w.got.push(value);
      }
      if w.got.len() == w.want {
        if let Some(Waiter {
          tx: Some(tx), got, ..
        }) = st.waiting.pop_front()
        {
          let _ = tx.send(Ok(got));
        }
      }
    };
    match failed {
      None => drop(st.unread.drain(..at)),
      Some(Failure::Protocol(why)) => {
        let why = format!("protocol error: {why}");
        self.fail_all(st, || closed_error(CauseKind::Closed, &why), true);
      }
      Some(Failure::Setup(kind, text)) => {
        let again = || RedisError::from((kind, "connection setup refused", text.clone()));
        self.fail_all(st, again, true);
      }
    }
  }

  fn closed(&self, sid: SocketId, kind: CauseKind, message: &str) {
    let mut st = self.state.lock();
    if st.sid == Some(sid) {
      self.fail_all(&mut st, || closed_error(kind, message), false);
    }
  }
}

impl Drop for Shared {
  fn drop(&mut self) {
    if let Some(sid) = self.state.get_mut().sid.take() {
      self.io.close(sid);
    }
  }
}
