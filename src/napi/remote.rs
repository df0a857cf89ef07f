//! The face of remote stores (Redis today). Requests return an id at once; the outcome
//! arrives through `drain` as an event with that id. A request on the JS thread's own
//! executor starts at the JS side's next `takeIo` (lib/sockets.js calls it at the end of
//! the current job, and after every 32 calls), so requests made together share one write
//! per node. The I/O costs ~100 µs, so plain arguments are fine here.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

use super::{destroyed, key, millis, with_local, Manager};
use crate::core::ErrorKind;
use crate::core::{LockId, RequestId};
use crate::remote::RemoteApi;

fn remote(handle: f64) -> Option<Arc<dyn RemoteApi>> {
  with_local(|l, _| match l.managers.get(handle)? {
    Manager::Remote(r) => Some(r.clone()),
    Manager::Memory(_) | Manager::Face(_) => None,
  })
  .flatten()
}

/// Starts a lock request for `key` with `ttlMs`; returns the request id.
#[napi(catch_unwind)]
pub fn remote_lock(env: &Env, handle: f64, key: Unknown, ttl_ms: f64) -> Result<f64, ErrorKind> {
  let key: Arc<[u8]> = (&*key::read(env, &key)?).into();
  let m = remote(handle).ok_or_else(destroyed)?;
  Ok(m.lock(key, millis(ttl_ms)).as_f64())
}

/// Starts one lock request for every key of `keys` (all or nothing); returns its id.
#[napi(catch_unwind)]
pub fn remote_lock_all(
  env: &Env,
  handle: f64,
  keys: Vec<Unknown>,
  ttl_ms: f64,
) -> Result<f64, ErrorKind> {
  let keys = keys
    .iter()
    .map(|k| key::read(env, k).map(|k| Arc::<[u8]>::from(&*k)))
    .collect::<Result<Vec<_>, _>>()?;
  let m = remote(handle).ok_or_else(destroyed)?;
  m.lock_all(keys, millis(ttl_ms))
    .map(RequestId::as_f64)
    .map_err(Into::into)
}

/// The caller gave up on request `req` (abort): see `RemoteApi::cancel`.
#[napi(catch_unwind)]
pub fn remote_cancel(handle: f64, req: f64) {
  if let (Some(m), Some(req)) = (remote(handle), RequestId::from_f64(req)) {
    m.cancel(req);
  }
}

/// Starts an unlock; returns the request id, or 0 when the manager is gone.
#[napi(catch_unwind)]
pub fn remote_unlock(handle: f64, lock_id: f64) -> f64 {
  match (remote(handle), LockId::from_f64(lock_id)) {
    (Some(m), Some(id)) => m.unlock(id).as_f64(),
    _ => 0.0,
  }
}

/// Starts an extend and returns the request id, or 0 when refused without I/O because
/// the lock's validity has passed (or it was released).
#[napi(catch_unwind)]
pub fn remote_extend(handle: f64, lock_id: f64, ttl_ms: f64) -> Result<f64, ErrorKind> {
  let m = remote(handle).ok_or_else(destroyed)?;
  Ok(
    LockId::from_f64(lock_id)
      .and_then(|id| m.extend(id, millis(ttl_ms)))
      .map_or(0.0, RequestId::as_f64),
  )
}
