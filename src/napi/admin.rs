//! The CLI's store handle (`StoreAdmin`): every call runs on a libuv pool thread that
//! blocks on the I/O runtime, so the CLI's calls stay off the lock path, and answers as a
//! JSON string (`{ ok }` or `{ error: { code, message } }`) the JS side parses.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{Admin, LockView, NodeView, Partial};
use crate::config;
use crate::core::{runtime, Cause, Error, ErrorKind};

type Job = Pin<Box<dyn Future<Output = std::result::Result<Value, Error>> + Send>>;

/// One call: its future, run to the end on a pool thread.
pub struct Call(Option<Job>);

impl Task for Call {
  type Output = String;
  type JsValue = String;

  fn compute(&mut self) -> Result<String> {
    let Some(job) = self.0.take() else {
      return Ok(
        json!({ "error": { "code": "E_INTERNAL", "message": "called twice" } }).to_string(),
      );
    };
    let out = match runtime::runtime().block_on(job) {
      Ok(v) => json!({ "ok": v }),
      Err(e) => json!({ "error": { "code": e.kind.code(), "message": e.message } }),
    };
    Ok(out.to_string())
  }

  fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
    Ok(output)
  }
}

#[napi]
pub struct StoreAdmin {
  inner: Arc<Admin>,
}

fn text(b: &[u8]) -> String {
  String::from_utf8_lossy(b).into_owned()
}

fn causes(c: &[Cause]) -> Value {
  c.iter().map(ToString::to_string).collect()
}

fn lock_json(l: &LockView) -> Value {
  json!({ "key": text(&l.key), "token": l.token, "ttlMs": l.ttl_ms, "fence": l.fence,
          "heldOn": l.held_on, "nodes": l.nodes, "waitedFor": l.waited_for })
}

fn node_json(n: &NodeView) -> Value {
  json!({ "node": n.node, "token": n.token, "ttlMs": n.ttl_ms, "fence": n.fence,
          "waitingMs": n.waiting_ms, "error": n.error.as_ref().map(ToString::to_string) })
}

fn partial<T>(p: Partial<T>, f: impl FnOnce(T) -> Value) -> Value {
  json!({ "value": f(p.value), "failures": causes(&p.failures) })
}

#[napi]
impl StoreAdmin {
  /// `options`: what `create()` takes (`type` and `connection`; lock options are ignored).
  #[napi(constructor, catch_unwind)]
  pub fn new(env: &Env, options: Unknown) -> Result<StoreAdmin, ErrorKind> {
    let value = super::options::read(env.raw(), options.raw(), "", 0).map_err(|e| {
      napi::Error::new(
        ErrorKind::ConfigType,
        format!("options cannot be read: {}", e.0),
      )
    })?;
    let cfg = config::parse_as(&value, "redis")?;
    Ok(StoreAdmin {
      inner: Arc::new({
        let _rt = runtime::runtime().enter();
        Admin::open(&cfg)?
      }),
    })
  }

  fn call<F>(&self, f: impl FnOnce(Arc<Admin>) -> F) -> AsyncTask<Call>
  where
    F: Future<Output = std::result::Result<Value, Error>> + Send + 'static,
  {
    AsyncTask::new(Call(Some(Box::pin(f(self.inner.clone())))))
  }

  /// Held locks matching `pattern`: `{ value: [lock], failures: [cause] }`.
  #[napi]
  pub fn list(&self, pattern: String, limit: u32) -> AsyncTask<Call> {
    self.call(move |a| async move {
      let p = a.list(&pattern, limit as usize).await?;
      Ok(partial(p, |v| v.iter().map(lock_json).collect()))
    })
  }

  /// What every node holds at `key`: `[node]`.
  #[napi]
  pub fn inspect(&self, key: String) -> AsyncTask<Call> {
    self.call(move |a| async move {
      let v = a.inspect(key.as_bytes()).await?;
      Ok(v.iter().map(node_json).collect())
    })
  }

  /// Deletes `key` (whoever holds it, or only where it holds `token`): `{ value: nodes it
  /// was deleted on, failures }`.
  #[napi]
  pub fn force_unlock(&self, key: String, token: Option<String>) -> AsyncTask<Call> {
    self.call(move |a| async move {
      let p = a.force_unlock(key.as_bytes(), token.as_deref()).await?;
      Ok(partial(p, Value::from))
    })
  }

  /// Whether the store tells of changes to keys matching `pattern` (it starts listening).
  #[napi]
  pub fn notifies(&self, pattern: String) -> AsyncTask<Call> {
    self.call(move |a| async move { Ok(Value::from(a.notifies(&pattern).await)) })
  }

  /// Resolves with the count of changes seen, once it passes `seen` or after `ms`.
  #[napi]
  pub fn changed(&self, seen: f64, ms: f64) -> AsyncTask<Call> {
    self.call(move |a| async move {
      let n = a
        .changed(seen as u64, Duration::from_millis(ms as u64))
        .await;
      Ok(Value::from(n))
    })
  }

  /// Stops listening and closes idle connections.
  #[napi]
  pub fn close(&self) {
    self.inner.close();
  }
}
