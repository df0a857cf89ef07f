//! Parsing of the options given to `Lock.create()`.
//!
//! The JS layer serialises the options with `JSON.stringify` (non-finite numbers and
//! non-JSON values become marker objects, see `index.js`), so every rule about what a
//! valid configuration is lives here, with messages that name the offending field.

use crate::error::{Code, OxError};
use serde_json::{Map, Value};
use std::time::Duration;

/// Lock time-to-live used when `lock()` gets none (node-redlock has no default; 10 s is
/// redis-semaphore's and a safe bound for a forgotten unlock).
pub const DEFAULT_TTL_MS: f64 = 10_000.0;
/// node-redlock's retry defaults, kept for the in-memory budget: 10 retries of 200 ms.
pub const DEFAULT_RETRY: i64 = 10;
pub const DEFAULT_DELAY_MS: f64 = 200.0;
/// The largest ttl or wait we accept: setTimeout's limit (about 24.8 days).
pub const MAX_MS: f64 = 2_147_483_647.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
  pub namespace: Option<String>,
  pub default_ttl_ms: f64,
  pub backend: Backend,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
  InMemory(InMemoryConfig),
  Redis(RedisConfig),
}

impl Backend {
  pub fn type_name(&self) -> &'static str {
    match self {
      Backend::InMemory(_) => "inMemory",
      Backend::Redis(_) => "redis",
    }
  }
}

/// One Redis master.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisNode {
  /// What redis-rs connects to (may hold credentials: never shown).
  pub url: String,
  /// `host:port`, for messages.
  pub label: String,
}

/// node-redlock's options plus the timeouts the Redlock spec asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
  pub nodes: Vec<RedisNode>,
  pub drift_factor: f64,
  /// Attempts after the first; negative means no limit.
  pub retry_count: i64,
  pub retry_delay_ms: f64,
  /// The delay between attempts is `retryDelay ± retryJitter` (node-redlock's symmetric jitter).
  pub retry_jitter_ms: f64,
  /// Per-node bound on one command: a dead or paused node never holds an attempt longer.
  pub node_timeout_ms: f64,
  pub connect_timeout_ms: f64,
}

impl RedisConfig {
  pub fn quorum(&self) -> usize {
    self.nodes.len() / 2 + 1
  }
}

pub const DEFAULT_DRIFT_FACTOR: f64 = 0.01;
pub const DEFAULT_RETRY_JITTER_MS: f64 = 100.0;
pub const DEFAULT_NODE_TIMEOUT_MS: f64 = 500.0;
pub const DEFAULT_CONNECT_TIMEOUT_MS: f64 = 1000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
  /// Locks belong to one manager (@leverege/lock's "locks on the instance").
  Instance,
  /// One table shared by every manager in the process, worker threads included.
  Process,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InMemoryConfig {
  /// Attempts after the first; negative means wait without limit.
  pub retry: i64,
  /// Milliseconds between attempts; with `retry` it sets the wait budget.
  pub delay_ms: f64,
  pub scope: Scope,
}

impl InMemoryConfig {
  /// How long a contended `lock()` may wait: `retry × delay`, `None` = no limit.
  pub fn wait(&self) -> Option<Duration> {
    if self.retry < 0 {
      None
    } else {
      Some(Duration::from_secs_f64(
        (self.retry as f64 * self.delay_ms / 1000.0).min(MAX_MS),
      ))
    }
  }
}

const TYPES: &str = "'inMemory' or 'redis'";

/// Parses the JSON form of the options object given to `create()`.
pub fn parse(json: &str) -> Result<Config, OxError> {
  let root: Value = serde_json::from_str(json)
    .map_err(|e| OxError::new(Code::Config, format!("options are not valid JSON: {e}")))?;
  let root = match root {
    Value::Null => Map::new(),
    Value::Object(m) => m,
    other => return Err(type_err("options", "an object", &other)),
  };

  // `lockConfig` (object, or the JSON string of a LOCK_CONFIG env var) wins over flat fields.
  let nested = match root.get("lockConfig") {
    None | Some(Value::Null) => None,
    Some(Value::String(s)) => {
      let v: Value = serde_json::from_str(s).map_err(|e| {
        OxError::new(
          Code::Config,
          format!("lockConfig is a string but not valid JSON ({e})"),
        )
      })?;
      match v {
        Value::Object(m) => Some(m),
        other => {
          return Err(type_err(
            "lockConfig",
            "an object or its JSON string",
            &other,
          ))
        }
      }
    }
    Some(Value::Object(m)) => Some(m.clone()),
    Some(other) => {
      return Err(type_err(
        "lockConfig",
        "an object or its JSON string",
        other,
      ))
    }
  };
  let src = Source {
    root: &root,
    nested: nested.as_ref(),
  };

  let namespace = match src.get_top("namespace") {
    None => None,
    Some((Value::String(s), _)) => Some(s.clone()),
    Some((v, path)) => return Err(type_err(&path, "a string", v)),
  };
  let default_ttl_ms = match src.number("ttl")? {
    None => DEFAULT_TTL_MS,
    Some((n, path)) => {
      if !(n > 0.0 && n <= MAX_MS) {
        return Err(range_err(
          &path,
          &format!("must be > 0 and <= {MAX_MS} ms, got {n}"),
        ));
      }
      n.ceil()
    }
  };

  let type_name = match src.get("type") {
    None => "inMemory".to_string(),
    Some((Value::String(s), _)) => s.clone(),
    Some((v, path)) => return Err(type_err(&path, &format!("a string ({TYPES})"), v)),
  };
  let backend = match type_name.as_str() {
    "inMemory" | "memory" | "in-memory" => Backend::InMemory(parse_in_memory(&src)?),
    "redis" => Backend::Redis(parse_redis(&src)?),
    other => {
      return Err(OxError::new(
        Code::Config,
        format!(
          "{}: unknown lock type '{other}'; expected {TYPES}",
          src.path("type")
        ),
      ))
    }
  };
  Ok(Config {
    namespace,
    default_ttl_ms,
    backend,
  })
}

fn parse_in_memory(src: &Source) -> Result<InMemoryConfig, OxError> {
  // `retry`/`delay` are @leverege/lock's names; a config written for Redis may carry
  // node-redlock's `lockOptions.retryCount`/`retryDelay` instead, which mean the same.
  let lock_options = match src.get("lockOptions") {
    None => None,
    Some((Value::Object(m), path)) => Some((m, path)),
    Some((v, path)) => return Err(type_err(&path, "an object", v)),
  };
  let from_lock_options = |name: &str| -> Result<Option<(f64, String)>, OxError> {
    match &lock_options {
      None => Ok(None),
      Some((m, path)) => number_at(m.get(name), &format!("{path}.{name}")),
    }
  };

  let retry = match src.number("retry")?.or(from_lock_options("retryCount")?) {
    None => DEFAULT_RETRY,
    Some((n, path)) => {
      if n.fract() != 0.0 || n.abs() > 1e12 {
        return Err(range_err(&path, &format!("must be an integer, got {n}")));
      }
      n as i64
    }
  };
  let delay_ms = match src.number("delay")?.or(from_lock_options("retryDelay")?) {
    None => DEFAULT_DELAY_MS,
    Some((n, path)) => {
      if !(0.0..=MAX_MS).contains(&n) {
        return Err(range_err(
          &path,
          &format!("must be between 0 and {MAX_MS} ms, got {n}"),
        ));
      }
      n
    }
  };
  let scope = match src.get("scope") {
    None => Scope::Instance,
    Some((Value::String(s), path)) => match s.as_str() {
      "instance" => Scope::Instance,
      "process" => Scope::Process,
      other => {
        return Err(OxError::new(
          Code::Config,
          format!("{path}: unknown scope '{other}'; expected 'instance' or 'process'"),
        ))
      }
    },
    Some((v, path)) => return Err(type_err(&path, "'instance' or 'process'", v)),
  };
  Ok(InMemoryConfig {
    retry,
    delay_ms,
    scope,
  })
}

fn parse_redis(src: &Source) -> Result<RedisConfig, OxError> {
  let nodes = match src.get("connection") {
    None => vec![node_from_object(&Map::new(), "connection")?],
    Some((Value::Array(items), path)) => {
      if items.is_empty() {
        return Err(OxError::new(
          Code::Config,
          format!("{path} must list at least one Redis node"),
        ));
      }
      let mut nodes = Vec::with_capacity(items.len());
      for (i, item) in items.iter().enumerate() {
        nodes.push(node_from_value(item, &format!("{path}[{i}]"))?);
      }
      nodes
    }
    Some((v, path)) => vec![node_from_value(v, &path)?],
  };
  let lock_options = match src.get("lockOptions") {
    None => Map::new(),
    Some((Value::Object(m), _)) => m.clone(),
    Some((v, path)) => return Err(type_err(&path, "an object", v)),
  };
  let lo_path = src.path("lockOptions");
  let num = |name: &str, default: f64, min: f64, max: f64| -> Result<f64, OxError> {
    match number_at(lock_options.get(name), &format!("{lo_path}.{name}"))? {
      None => Ok(default),
      Some((n, _)) if n >= min && n <= max => Ok(n),
      Some((n, path)) => Err(range_err(
        &path,
        &format!("must be between {min} and {max}, got {n}"),
      )),
    }
  };
  let retry_count = num("retryCount", DEFAULT_RETRY as f64, -1e12, 1e12)?;
  if retry_count.fract() != 0.0 {
    return Err(range_err(
      &format!("{lo_path}.retryCount"),
      &format!("must be an integer, got {retry_count}"),
    ));
  }
  Ok(RedisConfig {
    nodes,
    drift_factor: num("driftFactor", DEFAULT_DRIFT_FACTOR, 0.0, 0.5)?,
    retry_count: retry_count as i64,
    retry_delay_ms: num("retryDelay", DEFAULT_DELAY_MS, 0.0, MAX_MS)?,
    retry_jitter_ms: num("retryJitter", DEFAULT_RETRY_JITTER_MS, 0.0, MAX_MS)?,
    node_timeout_ms: num("nodeTimeout", DEFAULT_NODE_TIMEOUT_MS, 1.0, MAX_MS)?,
    connect_timeout_ms: num("connectTimeout", DEFAULT_CONNECT_TIMEOUT_MS, 1.0, MAX_MS)?,
  })
}

fn node_from_value(v: &Value, path: &str) -> Result<RedisNode, OxError> {
  match v {
    Value::String(url) => node_from_url(url, path),
    Value::Object(m) => node_from_object(m, path),
    other => Err(type_err(
      path,
      "an object { host, port, ... } or a redis:// URL",
      other,
    )),
  }
}

fn node_from_url(url: &str, path: &str) -> Result<RedisNode, OxError> {
  let rest = url
    .strip_prefix("redis://")
    .or_else(|| url.strip_prefix("rediss://"))
    .ok_or_else(|| {
      OxError::new(
        Code::Config,
        format!("{path} must start with redis:// or rediss://"),
      )
    })?;
  // host:port without user info, for messages; redis-rs parses the URL itself.
  let authority = rest.split(['/', '?']).next().unwrap_or("");
  let host_port = authority.rsplit('@').next().unwrap_or("");
  let label = if host_port.is_empty() {
    "127.0.0.1:6379".to_string()
  } else if host_port.contains(':') {
    host_port.to_string()
  } else {
    format!("{host_port}:6379")
  };
  redis::parse_redis_url(url).ok_or_else(|| {
    OxError::new(
      Code::Config,
      format!("{path} is not a valid Redis URL ({label})"),
    )
  })?;
  Ok(RedisNode {
    url: url.to_string(),
    label,
  })
}

fn node_from_object(m: &Map<String, Value>, path: &str) -> Result<RedisNode, OxError> {
  let string = |name: &str| -> Result<Option<String>, OxError> {
    match m.get(name) {
      None | Some(Value::Null) => Ok(None),
      Some(Value::String(s)) => Ok(Some(s.clone())),
      Some(v) => Err(type_err(&format!("{path}.{name}"), "a string", v)),
    }
  };
  let host = string("host")?.unwrap_or_else(|| "127.0.0.1".into());
  let port = match number_at(m.get("port"), &format!("{path}.port"))? {
    None => 6379.0,
    Some((n, _)) if n.fract() == 0.0 && (1.0..=65535.0).contains(&n) => n,
    Some((n, p)) => return Err(range_err(&p, &format!("must be a port number, got {n}"))),
  };
  let db = match number_at(m.get("db"), &format!("{path}.db"))? {
    None => 0.0,
    Some((n, _)) if n.fract() == 0.0 && n >= 0.0 => n,
    Some((n, p)) => {
      return Err(range_err(
        &p,
        &format!("must be a database number, got {n}"),
      ))
    }
  };
  let tls = match m.get("tls") {
    None | Some(Value::Null) | Some(Value::Bool(false)) => false,
    Some(Value::Bool(true)) | Some(Value::Object(_)) => true,
    Some(v) => return Err(type_err(&format!("{path}.tls"), "a boolean", v)),
  };
  let username = string("username")?;
  let password = string("password")?;
  let mut url = String::from(if tls { "rediss://" } else { "redis://" });
  if username.is_some() || password.is_some() {
    url.push_str(&percent_encode(username.as_deref().unwrap_or("")));
    if let Some(p) = &password {
      url.push(':');
      url.push_str(&percent_encode(p));
    }
    url.push('@');
  }
  let host_in_url = if host.contains(':') {
    format!("[{host}]")
  } else {
    host.clone()
  };
  url.push_str(&format!("{host_in_url}:{port}/{db}"));
  Ok(RedisNode {
    url,
    label: format!("{host_in_url}:{port}"),
  })
}

fn percent_encode(s: &str) -> String {
  let mut out = String::with_capacity(s.len());
  for b in s.bytes() {
    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
      out.push(b as char);
    } else {
      out.push_str(&format!("%{b:02X}"));
    }
  }
  out
}

/// Looks a field up in `lockConfig` first, then in the flat options, remembering the path.
struct Source<'a> {
  root: &'a Map<String, Value>,
  nested: Option<&'a Map<String, Value>>,
}

impl Source<'_> {
  fn get(&self, name: &str) -> Option<(&Value, String)> {
    if let Some(v) = self
      .nested
      .and_then(|m| m.get(name))
      .filter(|v| !v.is_null())
    {
      return Some((v, format!("lockConfig.{name}")));
    }
    self
      .root
      .get(name)
      .filter(|v| !v.is_null())
      .map(|v| (v, name.to_string()))
  }

  /// `namespace` is a top-level option; `lockConfig.namespace` is accepted as a fallback.
  fn get_top(&self, name: &str) -> Option<(&Value, String)> {
    if let Some(v) = self.root.get(name).filter(|v| !v.is_null()) {
      return Some((v, name.to_string()));
    }
    self
      .nested
      .and_then(|m| m.get(name))
      .filter(|v| !v.is_null())
      .map(|v| (v, format!("lockConfig.{name}")))
  }

  fn path(&self, name: &str) -> String {
    self
      .get(name)
      .map(|(_, p)| p)
      .unwrap_or_else(|| name.into())
  }

  fn number(&self, name: &str) -> Result<Option<(f64, String)>, OxError> {
    match self.get(name) {
      None => Ok(None),
      Some((v, path)) => number_at(Some(v), &path),
    }
  }
}

fn number_at(v: Option<&Value>, path: &str) -> Result<Option<(f64, String)>, OxError> {
  match v {
    None | Some(Value::Null) => Ok(None),
    Some(Value::Number(n)) => Ok(n.as_f64().map(|f| (f, path.to_string()))),
    Some(Value::Object(m)) if m.contains_key("$nonFinite") => Err(range_err(
      path,
      &format!(
        "must be a finite number, got {}",
        m["$nonFinite"].as_str().unwrap_or("a non-finite number")
      ),
    )),
    Some(other) => Err(type_err(path, "a number", other)),
  }
}

/// What the JS value was, in the words a JS developer uses.
fn js_type(v: &Value) -> String {
  match v {
    Value::Null => "null".into(),
    Value::Bool(_) => "boolean".into(),
    Value::Number(_) => "number".into(),
    Value::String(_) => "string".into(),
    Value::Array(_) => "array".into(),
    Value::Object(m) => match m.get("$jsType").and_then(Value::as_str) {
      Some(t) => t.into(),
      None if m.contains_key("$nonFinite") => "number".into(),
      None => "object".into(),
    },
  }
}

fn type_err(path: &str, expected: &str, got: &Value) -> OxError {
  OxError::new(
    Code::ConfigType,
    format!("{path} must be {expected}, got {}", js_type(got)),
  )
}

fn range_err(path: &str, what: &str) -> OxError {
  OxError::new(Code::ConfigRange, format!("{path} {what}"))
}

#[cfg(test)]
mod tests {
  use super::*;

  fn mem(c: &Config) -> &InMemoryConfig {
    match &c.backend {
      Backend::InMemory(m) => m,
      other => panic!("expected inMemory, got {other:?}"),
    }
  }

  fn redis(c: &Config) -> &RedisConfig {
    match &c.backend {
      Backend::Redis(r) => r,
      other => panic!("expected redis, got {other:?}"),
    }
  }

  #[test]
  fn redis_connection_forms() {
    let c = parse(
      r#"{"type":"redis","connection":{"host":"10.0.0.1","port":7000,"password":"p@ss","db":2}}"#,
    )
    .unwrap();
    let r = redis(&c);
    assert_eq!(r.nodes[0].label, "10.0.0.1:7000");
    assert_eq!(r.nodes[0].url, "redis://:p%40ss@10.0.0.1:7000/2");
    assert_eq!(r.quorum(), 1);
    assert_eq!(
      (
        r.retry_count,
        r.retry_delay_ms,
        r.retry_jitter_ms,
        r.drift_factor
      ),
      (10, 200.0, 100.0, 0.01)
    );

    let c = parse(r#"{"lockConfig":{"type":"redis","connection":["redis://a:1","redis://u:secret@b:2/0","rediss://c"]}}"#).unwrap();
    let r = redis(&c);
    let labels: Vec<_> = r.nodes.iter().map(|n| n.label.as_str()).collect();
    assert_eq!(labels, ["a:1", "b:2", "c:6379"]);
    assert_eq!(r.quorum(), 2);
  }

  #[test]
  fn redis_errors_name_the_field_and_hide_secrets() {
    let e = parse(r#"{"type":"redis","connection":"http://u:secret@x"}"#).unwrap_err();
    assert!(e.message.starts_with("connection"), "{}", e.message);
    assert!(!e.message.contains("secret"));
    let e = parse(r#"{"type":"redis","connection":[]}"#).unwrap_err();
    assert_eq!(e.code, Code::Config);
    let e = parse(r#"{"type":"redis","connection":{"port":"6379"}}"#).unwrap_err();
    assert_eq!(e.code, Code::ConfigType);
    assert!(e.message.starts_with("connection.port"));
    let e = parse(r#"{"type":"redis","lockOptions":{"retryCount":1.5}}"#).unwrap_err();
    assert_eq!(e.code, Code::ConfigRange);
    assert!(e.message.starts_with("lockOptions.retryCount"));
    let e = parse(r#"{"type":"redis","lockOptions":{"driftFactor":-1}}"#).unwrap_err();
    assert!(e.message.starts_with("lockOptions.driftFactor"));
  }

  #[test]
  fn defaults_to_in_memory_with_redlock_budget() {
    let c = parse("{}").unwrap();
    assert_eq!(c.backend.type_name(), "inMemory");
    assert_eq!(mem(&c).retry, 10);
    assert_eq!(mem(&c).wait(), Some(Duration::from_millis(2000)));
    assert_eq!(c.default_ttl_ms, 10_000.0);
    assert_eq!(mem(&c).scope, Scope::Instance);
  }

  #[test]
  fn lock_config_string_wins_over_flat_fields() {
    let c = parse(
      r#"{"namespace":"app","retry":5,"lockConfig":"{\"type\":\"inMemory\",\"retry\":0,\"delay\":50}"}"#,
    )
    .unwrap();
    assert_eq!(c.namespace.as_deref(), Some("app"));
    assert_eq!(mem(&c).retry, 0);
    assert_eq!(mem(&c).wait(), Some(Duration::ZERO));
  }

  #[test]
  fn negative_retry_waits_forever() {
    let c = parse(r#"{"retry":-1}"#).unwrap();
    assert_eq!(mem(&c).wait(), None);
  }

  #[test]
  fn redlock_option_names_are_accepted_for_in_memory() {
    let c = parse(r#"{"lockOptions":{"retryCount":3,"retryDelay":10}}"#).unwrap();
    assert_eq!(mem(&c).wait(), Some(Duration::from_millis(30)));
  }

  #[test]
  fn errors_name_the_field() {
    let e = parse(r#"{"type":"mongo"}"#).unwrap_err();
    assert_eq!(e.code, Code::Config);
    assert!(e.message.contains("type") && e.message.contains("mongo"));

    let e = parse(r#"{"lockConfig":"{nope"}"#).unwrap_err();
    assert_eq!(e.code, Code::Config);
    assert!(e.message.contains("lockConfig"));

    let e = parse(r#"{"lockConfig":{"retry":"3"}}"#).unwrap_err();
    assert_eq!(e.code, Code::ConfigType);
    assert!(e.message.starts_with("lockConfig.retry"), "{}", e.message);

    let e = parse(r#"{"delay":{"$nonFinite":"NaN"}}"#).unwrap_err();
    assert_eq!(e.code, Code::ConfigRange);
    assert!(e.message.contains("delay") && e.message.contains("NaN"));

    let e = parse(r#"{"retry":1.5}"#).unwrap_err();
    assert_eq!(e.code, Code::ConfigRange);

    let e = parse(r#"{"namespace":{"$jsType":"bigint"}}"#).unwrap_err();
    assert_eq!(e.code, Code::ConfigType);
    assert!(e.message.contains("bigint"));

    let e = parse(r#"[1]"#).unwrap_err();
    assert_eq!(e.code, Code::ConfigType);
  }
}
