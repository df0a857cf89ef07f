//! Sockets the JS thread drives for the core: the core asks for a connection, writes bytes
//! and closes it (`IoOp`s, taken by `lib/sockets.js` at its next flush, then done with
//! Node's `net`/`tls`); what the socket says comes back as calls to the
//! `Stream` that opened it, on the same thread. A request and its reply never cross a
//! thread, and TLS is Node's own (its CA, client certificate and `servername` options).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use super::exec::thread_tag;
use super::{CauseKind, Wake};

/// A socket of one `Io`; never reused, so events of a socket closed earlier are ignored.
pub type SocketId = u32;

/// Node's `tls.connect` options (PEM bytes). No `Debug`: it holds a private key.
#[derive(Clone, Default)]
pub struct TlsOptions {
  pub ca: Option<Vec<u8>>,
  pub cert: Option<Vec<u8>>,
  pub key: Option<Vec<u8>>,
  pub reject_unauthorized: bool,
  pub servername: Option<String>,
}

/// Where to connect.
#[derive(Clone)]
pub struct Target {
  pub host: String,
  pub port: u16,
  pub tls: Option<TlsOptions>,
  /// A connection not established within this fails with `CauseKind::Timeout`.
  pub connect_ms: u32,
}

pub enum IoOp {
  Open(SocketId, Target),
  Write(SocketId, Vec<u8>),
  Close(SocketId),
}

/// What a socket reports, on the JS thread.
pub trait Stream: Send + Sync {
  fn data(&self, sid: SocketId, bytes: &[u8]);
  /// The socket closed or could not connect; it is gone.
  fn closed(&self, sid: SocketId, kind: CauseKind, message: &str);
}

/// One module instance's sockets.
pub struct Io {
  ops: Mutex<Vec<IoOp>>,
  streams: Mutex<HashMap<SocketId, Weak<dyn Stream>>>,
  next: AtomicU32,
  owner: u64,
  waker: Arc<dyn Wake>,
}

impl Io {
  pub fn new(waker: Arc<dyn Wake>) -> Io {
    Io {
      ops: Mutex::new(Vec::new()),
      streams: Mutex::new(HashMap::new()),
      next: AtomicU32::new(1),
      owner: thread_tag(),
      waker,
    }
  }

  fn push(&self, op: IoOp) {
    let first = {
      let mut ops = self.ops.lock();
      // All the writes to one socket in a batch go out as one write: appended to its
      // first. Order holds: its open comes before, and nothing is written after a close.
      if let IoOp::Write(sid, bytes) = &op {
        let earlier = ops.iter_mut().find_map(|o| match o {
          IoOp::Write(s, buf) if s == sid => Some(buf),
          _ => None,
        });
        if let Some(buf) = earlier {
          buf.extend_from_slice(bytes);
          return;
        }
      }
      ops.push(op);
      ops.len() == 1
    };
    // On the owning thread the JS side takes the ops at its next flush, which every call
    // that can queue one schedules (lib/sockets.js).
    if first && thread_tag() != self.owner {
      self.waker.wake();
    }
  }

  /// Asks for a new socket to `target`; `stream` hears what it says.
  pub fn open(&self, stream: Weak<dyn Stream>, target: Target) -> SocketId {
    let sid = self.next.fetch_add(1, Ordering::Relaxed);
    self.streams.lock().insert(sid, stream);
    self.push(IoOp::Open(sid, target));
    sid
  }

  pub fn write(&self, sid: SocketId, bytes: &[u8]) {
    self.push(IoOp::Write(sid, bytes.to_vec()));
  }

  pub fn close(&self, sid: SocketId) {
    if self.streams.lock().remove(&sid).is_some() {
      self.push(IoOp::Close(sid));
    }
  }

  /// What the JS side has to do now, in order.
  pub fn take(&self) -> Vec<IoOp> {
    std::mem::take(&mut *self.ops.lock())
  }

  /// The stream of a live socket.
  pub fn stream(&self, sid: SocketId) -> Option<Arc<dyn Stream>> {
    self.streams.lock().get(&sid)?.upgrade()
  }

  /// Forgets a socket the JS side reports closed.
  pub fn forget(&self, sid: SocketId) -> Option<Arc<dyn Stream>> {
    self.streams.lock().remove(&sid)?.upgrade()
  }
}
