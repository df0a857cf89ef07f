//! The drop-in faces (`compat/*.js`): one connection per face object, and one function per
//! command. Each returns a request id at once; the outcome (`ints` / `strs`) and the face's
//! own signals arrive through `drain`.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{destroyed, not_initialized, options, register, with_local, Manager};
use crate::compat::distributed_locks::mongo as mongo_storage;
use crate::compat::distributed_locks::postgres as pg_storage;
use crate::compat::distributed_locks::redis as storage;
use crate::compat::{exclusive, fast_locky, Client, Link};
use crate::core::{ErrorKind, Outcome};

#[napi(object)]
pub struct FaceInfo {
  pub handle: f64,
  /// What the face's signals carry as `source`.
  pub id: f64,
}

/// Opens a face's connection: `connection` is `{ host, port, username, password, db, tls }`
/// or a `redis://` URL.
#[napi(catch_unwind)]
pub fn face_open(env: &Env, context: f64, connection: Unknown) -> Result<FaceInfo, ErrorKind> {
  let value = options::read(env.raw(), connection.raw(), "connection", 1).map_err(|e| {
    napi::Error::new(
      ErrorKind::ConfigType,
      format!("connection cannot be read: {}", e.0),
    )
  })?;
  let node = crate::config::node_from_value(&value, "connection")?;
  let mut id = 0.0;
  let handle = register(context, |inbox| {
    let client = Client::connect(&node, inbox)?;
    id = client.id.as_f64();
    Ok(Manager::Face(client))
  })?;
  Ok(FaceInfo { handle, id })
}

/// Opens a PostgresqlStorage's pool: `connection` is `{ host, port, user, password,
/// database, ssl }` or a postgres:// URL; `table` the lock table's name.
#[napi(catch_unwind)]
pub fn face_open_postgres(
  env: &Env,
  context: f64,
  connection: Unknown,
  table: String,
) -> Result<FaceInfo, ErrorKind> {
  let value = options::read(env.raw(), connection.raw(), "connection", 1).map_err(|e| {
    napi::Error::new(
      ErrorKind::ConfigType,
      format!("connection cannot be read: {}", e.0),
    )
  })?;
  let db = crate::config::database_from_value(&value, "connection")?;
  let table = crate::config::table_name(&table, "tableName")?;
  let timeout = Duration::from_millis(crate::config::DEFAULT_PG_TIMEOUT_MS as u64);
  let pool = crate::postgres::Pool::new(&db, 4, timeout, timeout)?;
  let mut id = 0.0;
  let handle = register(context, |inbox| {
    let link = Link::Postgres(Box::new(pg_storage::Storage::new(pool, &table)));
    let client = Client::new(link, inbox);
    id = client.id.as_f64();
    Ok(Manager::Face(client))
  })?;
  Ok(FaceInfo { handle, id })
}

/// Opens a MongoStorage's client (connections open on first use): `url` a mongodb://
/// connection string, `database` None for the URL's (else "test"), `collection` the lock
/// collection; expired documents are deleted every `cleanup_ms` while it is open (0:
/// never).
#[napi(catch_unwind)]
pub fn face_open_mongo(
  context: f64,
  url: String,
  database: Option<String>,
  collection: String,
  cleanup_ms: f64,
) -> Result<FaceInfo, ErrorKind> {
  let target = crate::config::mongo_target(&url, database.as_deref(), &collection)?;
  let mongo = crate::mongo::Mongo::new(&target)?;
  let cleanup = (cleanup_ms > 0.0).then(|| super::millis(cleanup_ms));
  let mut id = 0.0;
  let handle = register(context, |inbox| {
    let storage = mongo_storage::Storage::new(mongo, cleanup);
    let client = Client::new(Link::Mongo(Arc::new(storage)), inbox);
    id = client.id.as_f64();
    Ok(Manager::Face(client))
  })?;
  Ok(FaceInfo { handle, id })
}

fn run<F>(handle: f64, op: impl FnOnce(Arc<Client>) -> F) -> Result<f64, ErrorKind>
where
  F: Future<Output = Outcome> + Send + 'static,
{
  let client = with_local(|l, _| match l.managers.get(handle)? {
    Manager::Face(c) => Some(c.clone()),
    _ => None,
  })
  .flatten()
  .ok_or_else(destroyed)?;
  Ok(client.request(op(client.clone())).as_f64())
}

fn ttl(ms: f64) -> Option<u64> {
  (ms > 0.0).then(|| ms.ceil() as u64)
}

#[napi(catch_unwind)]
pub fn fl_lock(
  handle: f64,
  set: String,
  keys: Vec<String>,
  lockers: Vec<String>,
  force: bool,
  ttl_ms: f64,
) -> Result<f64, ErrorKind> {
  let items = keys.into_iter().zip(lockers).collect();
  run(handle, |c| {
    fast_locky::lock(c, set, items, force, ttl(ttl_ms))
  })
}

#[napi(catch_unwind)]
pub fn fl_unlock(handle: f64, set: String, keys: Vec<String>) -> Result<f64, ErrorKind> {
  run(handle, |c| fast_locky::unlock(c, set, keys))
}

#[napi(catch_unwind)]
pub fn fl_extend(handle: f64, keys: Vec<String>, ttl_ms: f64) -> Result<f64, ErrorKind> {
  run(handle, |c| {
    fast_locky::extend(c, keys, ttl(ttl_ms).unwrap_or(1))
  })
}

#[napi(catch_unwind)]
pub fn fl_get_lockers(handle: f64, keys: Vec<String>) -> Result<f64, ErrorKind> {
  run(handle, |c| fast_locky::get_lockers(c, keys))
}

#[napi(catch_unwind)]
pub fn fl_get_locks(handle: f64, set: String) -> Result<f64, ErrorKind> {
  run(handle, |c| fast_locky::get_locks(c, set))
}

#[napi(catch_unwind)]
pub fn fl_expire_locks(handle: f64, set: String, keys: Vec<String>) -> Result<f64, ErrorKind> {
  run(handle, |c| fast_locky::expire_locks(c, set, keys))
}

/// Starts the expiry watch of fast-locky's tracking set: a check every `every_ms`.
#[napi(catch_unwind)]
pub fn fl_watch(handle: f64, set: String, every_ms: f64) -> Result<(), ErrorKind> {
  with_local(|l, _| match l.managers.get(handle) {
    Some(Manager::Face(c)) => {
      fast_locky::watch(c, set, Duration::from_millis(every_ms.max(1.0) as u64));
      Ok(())
    }
    _ => Err(destroyed()),
  })
  .ok_or_else(not_initialized)?
}

#[napi(catch_unwind)]
pub fn el_acquire(
  handle: f64,
  key: String,
  contents: String,
  ttl_ms: f64,
  refresh_ms: f64,
) -> Result<f64, ErrorKind> {
  run(handle, |c| {
    exclusive::acquire(c, key, contents, ttl_ms as u64, refresh_ms as u64)
  })
}

/// Whether the refresh of `key` is on the wire right now.
#[napi(catch_unwind)]
pub fn el_is_refreshing(handle: f64, key: String) -> bool {
  with_local(|l, _| match l.managers.get(handle) {
    Some(Manager::Face(c)) => c.refreshing.lock().contains(&key),
    _ => false,
  })
  .unwrap_or(false)
}

#[napi(catch_unwind)]
pub fn el_release(handle: f64, key: String, contents: String) -> Result<f64, ErrorKind> {
  run(handle, |c| exclusive::release(c, key, contents))
}

#[napi(catch_unwind)]
pub fn el_inspect(handle: f64, key: String) -> Result<f64, ErrorKind> {
  run(handle, |c| exclusive::inspect(c, key))
}

#[napi(catch_unwind)]
pub fn dl_set(handle: f64, key: String, value: String, ttl_ms: f64) -> Result<f64, ErrorKind> {
  run(handle, |c| {
    storage::set(c, key, value, ttl(ttl_ms).unwrap_or(1))
  })
}

#[napi(catch_unwind)]
pub fn dl_unset(handle: f64, key: String, value: String) -> Result<f64, ErrorKind> {
  run(handle, |c| storage::unset(c, key, value))
}

#[napi(catch_unwind)]
pub fn dl_pg_init(handle: f64) -> Result<f64, ErrorKind> {
  run(handle, pg_storage::init)
}

#[napi(catch_unwind)]
pub fn dl_pg_set(handle: f64, key: String, value: String, ttl_s: f64) -> Result<f64, ErrorKind> {
  run(handle, |c| pg_storage::set(c, key, value, ttl_s))
}

#[napi(catch_unwind)]
pub fn dl_pg_unset(handle: f64, key: String, value: String) -> Result<f64, ErrorKind> {
  run(handle, |c| pg_storage::unset(c, key, value))
}

#[napi(catch_unwind)]
pub fn dl_mongo_init(handle: f64) -> Result<f64, ErrorKind> {
  run(handle, mongo_storage::init)
}

#[napi(catch_unwind)]
pub fn dl_mongo_set(handle: f64, key: String, value: String, ttl_s: f64) -> Result<f64, ErrorKind> {
  run(handle, |c| mongo_storage::set(c, key, value, ttl_s))
}

#[napi(catch_unwind)]
pub fn dl_mongo_unset(handle: f64, key: String, value: String) -> Result<f64, ErrorKind> {
  run(handle, |c| mongo_storage::unset(c, key, value))
}

/// Stops a face's background work (watchers, refreshes); its connection stays for the
/// commands in flight until `destroy`.
#[napi(catch_unwind)]
pub fn face_stop(handle: f64) {
  with_local(|l, _| {
    if let Some(Manager::Face(c)) = l.managers.get(handle) {
      c.close();
    }
  });
}
