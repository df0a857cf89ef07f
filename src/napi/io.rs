//! The sockets this thread drives for the core (`core::js_io`), as `lib/sockets.js` sees
//! them: at the end of a job in which calls into the addon were made (and every 32 such
//! calls) it takes what to open, write and close (`takeIo`), and it hands back what each socket read (`ioData`) or that it closed
//! (`ioClosed`), which answer as `takeIo` does. Local tasks run before each of these
//! returns.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::cell::RefCell;
use std::sync::Arc;

use super::with_local;
use crate::core::js_io::IoOp;
use crate::core::{CauseKind, Inbox};

thread_local! {
  /// The opens of the last batch, for `takeOpens`.
  static OPENS: RefCell<Vec<IoOpen>> = const { RefCell::new(Vec::new()) };
}

/// `ops` flag: `drain` has events now.
const HAS_EVENTS: u32 = 1;
/// `ops` flag: `takeOpens` returns this batch's opens, in the order of its open ops.
const HAS_OPENS: u32 = 2;

#[napi(object)]
pub struct IoOpen {
  pub host: String,
  pub port: u32,
  pub connect_ms: u32,
  pub tls: Option<IoTls>,
}

/// `tls.connect` options.
#[napi(object)]
pub struct IoTls {
  pub ca: Option<Buffer>,
  pub cert: Option<Buffer>,
  pub key: Option<Buffer>,
  pub reject_unauthorized: bool,
  pub servername: Option<String>,
}

fn inbox(context: f64) -> Option<Arc<Inbox>> {
  with_local(|l, _| l.inboxes.get(context as usize).cloned()).flatten()
}

/// Runs the local tasks of every module instance on this thread (`destroy` and `drain`:
/// what they woke may belong to any of them).
pub(super) fn run_tasks() {
  let execs: Vec<_> =
    with_local(|l, _| l.inboxes.iter().map(|i| i.exec.clone()).collect()).unwrap_or_default();
  for e in execs {
    e.run();
  }
}

/// Runs the local tasks of instance `context`, then returns what its sockets need, or null.
///
/// A batch is one Buffer: little-endian u32 words [number of ops, flags (1: `drain` has
/// events, 2: `takeOpens` has opens)], then [what (0 write, 1 open, 2 close), socket id,
/// bytes written] for each op in order, then the bytes of the writes, in order. (Made as
/// objects, arrays and external buffers, a batch cost more than the rest of a request's
/// work: N-API looks every property name up again.)
#[napi(catch_unwind)]
pub fn take_io(env: &Env, context: f64) -> Result<Option<BufferSlice<'_>>> {
  match inbox(context) {
    Some(inbox) => batch(env, &inbox),
    None => Ok(None),
  }
}

/// The opens of the batch just returned, in the order of its open ops.
#[napi(catch_unwind)]
pub fn take_opens() -> Vec<IoOpen> {
  OPENS.with_borrow_mut(std::mem::take)
}

fn batch<'e>(env: &'e Env, inbox: &Inbox) -> Result<Option<BufferSlice<'e>>> {
  inbox.exec.run();
  let ops = inbox.io.take();
  let events = inbox.take_owed();
  if ops.is_empty() && !events {
    return Ok(None);
  }
  let written: usize = ops
    .iter()
    .map(|op| match op {
      IoOp::Write(_, bytes) => bytes.len(),
      _ => 0,
    })
    .sum();
  let mut out = Vec::with_capacity(8 + 12 * ops.len() + written);
  let mut word = |w: u32| out.extend_from_slice(&w.to_le_bytes());
  let has_opens = ops.iter().any(|op| matches!(op, IoOp::Open(..)));
  word(ops.len() as u32);
  word(if events { HAS_EVENTS } else { 0 } | if has_opens { HAS_OPENS } else { 0 });
  for op in &ops {
    let (what, sid, len) = match op {
      IoOp::Write(sid, bytes) => (0, *sid, bytes.len() as u32),
      IoOp::Open(sid, _) => (1, *sid, 0),
      IoOp::Close(sid) => (2, *sid, 0),
    };
    word(what);
    word(sid);
    word(len);
  }
  let mut opens = Vec::new();
  for op in ops {
    match op {
      IoOp::Write(_, bytes) => out.extend_from_slice(&bytes),
      IoOp::Open(_, t) => {
        opens.push(IoOpen {
          host: t.host,
          port: t.port as u32,
          connect_ms: t.connect_ms,
          tls: t.tls.map(|t| IoTls {
            ca: t.ca.map(Into::into),
            cert: t.cert.map(Into::into),
            key: t.key.map(Into::into),
            reject_unauthorized: t.reject_unauthorized,
            servername: t.servername,
          }),
        });
      }
      IoOp::Close(_) => {}
    }
  }
  // (Replaced, not appended to: the JS side takes them with the batch that has them.)
  OPENS.with_borrow_mut(|o| *o = opens);
  BufferSlice::copy_from(env, out).map(Some)
}

/// Socket `sid` of instance `context` read `data`; returns what `takeIo` would now.
#[napi(catch_unwind)]
pub fn io_data<'e>(
  env: &'e Env,
  context: f64,
  sid: u32,
  data: &[u8],
) -> Result<Option<BufferSlice<'e>>> {
  let Some(inbox) = inbox(context) else {
    return Ok(None);
  };
  if let Some(s) = inbox.io.stream(sid) {
    s.data(sid, data);
  }
  batch(env, &inbox)
}

/// Socket `sid` closed (or never connected): `kind` is 'refused', 'timeout', 'dns', 'tls',
/// 'closed' or 'io'. Returns what `takeIo` would now.
#[napi(catch_unwind)]
pub fn io_closed(
  env: &Env,
  context: f64,
  sid: u32,
  kind: String,
  message: String,
) -> Result<Option<BufferSlice<'_>>> {
  let Some(inbox) = inbox(context) else {
    return Ok(None);
  };
  let kind = match kind.as_str() {
    "refused" => CauseKind::Refused,
    "timeout" => CauseKind::Timeout,
    "dns" => CauseKind::Dns,
    "tls" => CauseKind::Tls,
    "closed" => CauseKind::Closed,
    _ => CauseKind::Io,
  };
  if let Some(s) = inbox.io.forget(sid) {
    s.closed(sid, kind, &message);
  }
  batch(env, &inbox)
}
