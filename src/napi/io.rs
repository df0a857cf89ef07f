//! The sockets this thread drives for the core (`core::js_io`), as `lib/sockets.js` sees
//! them: at the end of a job in which calls into the addon were made (and every 32 such
//! calls) it takes what to open, write and close (`takeIo`), and it hands back what each socket read (`ioData`) or that it closed
//! (`ioClosed`), which answer as `takeIo` does. Local tasks run before each of these
//! returns.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

use super::with_local;
use crate::core::js_io::IoOp;
use crate::core::{CauseKind, Inbox};

/// What to do with the sockets, in order.
#[napi(object)]
pub struct IoBatch {
  /// Pairs of (what, socket id): 0 write the next of `data`, 1 open with the next of
  /// `opens`, 2 close.
  pub ops: Vec<u32>,
  pub data: Vec<Buffer>,
  pub opens: Vec<IoOpen>,
  /// Whether `drain` has events now.
  pub events: bool,
}

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
#[napi(catch_unwind)]
pub fn take_io(context: f64) -> Option<IoBatch> {
  batch(&*inbox(context)?)
}

fn batch(inbox: &Inbox) -> Option<IoBatch> {
  inbox.exec.run();
  let ops = inbox.io.take();
  let events = inbox.take_owed();
  if ops.is_empty() && !events {
    return None;
  }
  let mut batch = IoBatch {
    ops: Vec::with_capacity(ops.len() * 2),
    data: Vec::new(),
    opens: Vec::new(),
    events,
  };
  for op in ops {
    match op {
      IoOp::Write(sid, bytes) => {
        batch.ops.extend([0, sid]);
        batch.data.push(bytes.into());
      }
      IoOp::Open(sid, t) => {
        batch.ops.extend([1, sid]);
        batch.opens.push(IoOpen {
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
      IoOp::Close(sid) => batch.ops.extend([2, sid]),
    }
  }
  Some(batch)
}

/// Socket `sid` of instance `context` read `data`; returns what `takeIo` would now.
#[napi(catch_unwind)]
pub fn io_data(context: f64, sid: u32, data: &[u8]) -> Option<IoBatch> {
  let inbox = inbox(context)?;
  if let Some(s) = inbox.io.stream(sid) {
    s.data(sid, data);
  }
  batch(&inbox)
}

/// Socket `sid` closed (or never connected): `kind` is 'refused', 'timeout', 'dns', 'tls',
/// 'closed' or 'io'. Returns what `takeIo` would now.
#[napi(catch_unwind)]
pub fn io_closed(context: f64, sid: u32, kind: String, message: String) -> Option<IoBatch> {
  let inbox = inbox(context)?;
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
  batch(&inbox)
}
