//! Options of `type: 'redis'`: the nodes (one, or N independent masters for Redlock) and
//! node-redlock's `lockOptions`, plus the timeouts the Redlock spec asks for.

use super::memory::LOCK_OPTION_FIELDS;
use super::value::{config_err, range_err, type_err, Obj, Value};
use super::{lock_options, retry_and_delay, RetryPolicy, Source, MAX_MS};
use crate::core::Error;

/// `lockOptions` fields of the Redis backend alone.
pub const REDIS_LOCK_OPTION_FIELDS: &[&str] = &["fencing"];

pub const DEFAULT_DRIFT_FACTOR: f64 = 0.01;
pub const DEFAULT_RETRY_JITTER_MS: f64 = 100.0;
pub const DEFAULT_NODE_TIMEOUT_MS: f64 = 500.0;
pub const DEFAULT_CONNECT_TIMEOUT_MS: f64 = 1000.0;

pub(super) const CONNECTION_FIELDS: &[&str] = &[
  "host",
  "port",
  "username",
  "password",
  "db",
  "tls",
  "sentinels",
  "name",
  "cluster",
];
pub(super) use super::redis_deployments::SentinelSpec;
use super::redis_deployments::{cluster_from_object, sentinel_from_object};

pub(super) const TLS_FIELDS: &[&str] = &["ca", "cert", "key", "rejectUnauthorized", "servername"];

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
  pub nodes: Vec<RedisNode>,
  pub retry: RetryPolicy,
  pub drift_factor: f64,
  /// Whether an acquisition draws a fence (`lockOptions.fencing`, default true). Without,
  /// acquiring one key is a plain `SET NX PX`, no script.
  pub fencing: bool,
  /// Per-node bound on one command: a dead or paused node never holds an attempt longer.
  pub node_timeout_ms: f64,
  pub connect_timeout_ms: f64,
}

/// One Redis master.
#[derive(Clone, PartialEq)]
pub struct RedisNode {
  /// What redis-rs connects to (may hold credentials: never shown).
  pub url: String,
  /// `host:port`, for messages.
  pub label: String,
  pub tls: Option<TlsConfig>,
  /// A master found through Redis Sentinel (`url` and `label` are then unused).
  pub sentinel: Option<SentinelSpec>,
  /// A Redis Cluster's seed nodes (with the connection's credentials and TLS); `url` unused.
  pub cluster: Option<Vec<RedisNode>>,
}

/// TLS beyond the system roots: PEM bytes.
#[derive(Clone, PartialEq, Default)]
pub struct TlsConfig {
  pub ca: Option<Vec<u8>>,
  pub cert: Option<Vec<u8>>,
  pub key: Option<Vec<u8>>,
  /// `rejectUnauthorized: false`: no certificate or host name check (tests only).
  pub insecure: bool,
  /// The name the server's certificate must carry, when not the host connected to.
  pub servername: Option<String>,
}

// By hand, here and below: credentials and private keys must never reach a log line.
impl std::fmt::Debug for RedisNode {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("RedisNode")
      .field("label", &self.label)
      .field("tls", &self.tls)
      .field("sentinel", &self.sentinel)
      .field("cluster", &self.cluster)
      .finish_non_exhaustive()
  }
}

impl std::fmt::Debug for TlsConfig {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("TlsConfig")
      .field("ca", &self.ca.as_ref().map(Vec::len))
      .field("cert", &self.cert.as_ref().map(Vec::len))
      .field("key", &self.key.as_ref().map(|_| "<redacted>"))
      .field("insecure", &self.insecure)
      .field("servername", &self.servername)
      .finish()
  }
}

pub(super) fn parse(src: &Source) -> Result<RedisConfig, Error> {
  src.refuse("scope", "redis")?;
  let nodes = match src.get("connection") {
    None => vec![node_from_object(Obj::EMPTY, "connection")?],
    Some((Value::Array(items), path)) => {
      if items.is_empty() {
        return Err(config_err(format!(
          "{path} must list at least one Redis node"
        )));
      }
      let mut nodes = Vec::with_capacity(items.len());
      for (i, item) in items.iter().enumerate() {
        nodes.push(node_from_value(item, &format!("{path}[{i}]"))?);
      }
      nodes
    }
    Some((v, path)) => vec![node_from_value(v, &path)?],
  };
  let lo = lock_options(src)?;
  lo.only(LOCK_OPTION_FIELDS, REDIS_LOCK_OPTION_FIELDS)?;
  let (count, delay_ms) = retry_and_delay(src, lo)?;
  let t = timing(lo)?;
  let fencing = lo.boolean("fencing", true)?;
  Ok(RedisConfig {
    nodes,
    retry: RetryPolicy {
      count,
      delay_ms,
      jitter_ms: t.jitter_ms,
    },
    drift_factor: t.drift_factor,
    fencing,
    node_timeout_ms: t.node_timeout_ms,
    connect_timeout_ms: t.connect_timeout_ms,
  })
}

/// node-redlock's timing options of `lockOptions`, checked wherever they are given.
pub(super) struct Timing {
  pub jitter_ms: f64,
  pub drift_factor: f64,
  pub node_timeout_ms: f64,
  pub connect_timeout_ms: f64,
}

pub(super) fn timing(lo: Obj) -> Result<Timing, Error> {
  Ok(Timing {
    jitter_ms: lo.number_in("retryJitter", DEFAULT_RETRY_JITTER_MS, 0.0, MAX_MS)?,
    drift_factor: lo.number_in("driftFactor", DEFAULT_DRIFT_FACTOR, 0.0, 0.5)?,
    node_timeout_ms: lo.number_in("nodeTimeout", DEFAULT_NODE_TIMEOUT_MS, 1.0, MAX_MS)?,
    connect_timeout_ms: lo.number_in("connectTimeout", DEFAULT_CONNECT_TIMEOUT_MS, 1.0, MAX_MS)?,
  })
}

/// One node: an object `{ host, port, ... }` or a URL (also what the drop-in faces take).
pub fn node_from_value(v: &Value, path: &str) -> Result<RedisNode, Error> {
  match v {
    Value::String(url) => node_from_url(url, path),
    Value::Object(_) => node_from_object(Obj::of(v, path, "an object")?, path),
    other => Err(type_err(
      path,
      "an object { host, port, ... } or a redis:// URL",
      other,
    )),
  }
}

fn node_from_url(url: &str, path: &str) -> Result<RedisNode, Error> {
  if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
    return Err(config_err(format!(
      "{path} must start with redis:// or rediss://"
    )));
  }
  // The label (host:port, for messages) comes from the parsed URL only: no part of a URL
  // that does not parse is ever shown, it may hold a password.
  let parsed = redis::parse_redis_url(url)
    .ok_or_else(|| config_err(format!("{path} is not a valid Redis URL")))?;
  let host = match parsed.host_str() {
    Some("") | None => "127.0.0.1".to_string(),
    Some(h) => h.to_string(),
  };
  let label = format!("{host}:{}", parsed.port().unwrap_or(6379));
  Ok(RedisNode {
    url: url.to_string(),
    label,
    tls: None,
    sentinel: None,
    cluster: None,
  })
}

fn node_from_object(m: Obj, path: &str) -> Result<RedisNode, Error> {
  let m = Obj { path, ..m };
  m.only(CONNECTION_FIELDS, &[])?;
  let host = match m.string("host")? {
    None => "127.0.0.1",
    Some("") => return Err(range_err(&m.field_path("host"), "must not be empty")),
    Some(h) => h,
  };
  let port = match m.number("port")? {
    None => 6379.0,
    Some((n, _)) if n.fract() == 0.0 && (1.0..=65535.0).contains(&n) => n,
    Some((n, p)) => return Err(range_err(&p, &format!("must be a port number, got {n}"))),
  };
  let db = match m.number("db")? {
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
    None | Some(Value::Bool(false)) => None,
    Some(Value::Bool(true)) => Some(TlsConfig::default()),
    Some(v @ Value::Object(_)) => Some(tls_from_object(Obj::of(v, "", "")?, &m.field_path("tls"))?),
    Some(v) => {
      return Err(type_err(
        &m.field_path("tls"),
        "a boolean or { ca, cert, key }",
        v,
      ))
    }
  };
  let username = m.string("username")?;
  let password = m.string("password")?;
  if m.get("cluster").is_some() && (m.get("sentinels").is_some() || m.get("name").is_some()) {
    return Err(config_err(format!(
      "{}: a connection is a cluster or a Sentinel-found master, not both",
      m.field_path("cluster")
    )));
  }
  if m.get("sentinels").is_some() || m.get("name").is_some() {
    let sentinel = sentinel_from_object(&m, username, password, db)?;
    return Ok(RedisNode {
      url: String::new(),
      label: sentinel.name.clone(),
      tls,
      sentinel: Some(sentinel),
      cluster: None,
    });
  }
  if m.get("cluster").is_some() {
    return cluster_from_object(&m, username, password, db, tls);
  }
  Ok(build_node(host, port, db, username, password, tls))
}

pub(super) fn build_node(
  host: &str,
  port: f64,
  db: f64,
  username: Option<&str>,
  password: Option<&str>,
  tls: Option<TlsConfig>,
) -> RedisNode {
  let mut url = String::from(if tls.is_some() {
    "rediss://"
  } else {
    "redis://"
  });
  if username.is_some() || password.is_some() {
    url.push_str(&percent_encode(username.unwrap_or("")));
    if let Some(p) = password {
      url.push(':');
      url.push_str(&percent_encode(p));
    }
    url.push('@');
  }
  let host_in_url = if host.contains(':') {
    format!("[{host}]")
  } else {
    host.to_string()
  };
  url.push_str(&format!("{host_in_url}:{port}/{db}"));
  if tls.as_ref().is_some_and(|t| t.insecure) {
    url.push_str("#insecure");
  }
  RedisNode {
    url,
    label: format!("{host_in_url}:{port}"),
    tls,
    sentinel: None,
    cluster: None,
  }
}

pub(super) fn tls_from_object(o: Obj, path: &str) -> Result<TlsConfig, Error> {
  let o = Obj { path, ..o };
  o.only(TLS_FIELDS, &[])?;
  let pem = |name: &str| -> Result<Option<Vec<u8>>, Error> {
    match o.get(name) {
      None => Ok(None),
      Some(Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
      Some(Value::Bytes(b)) => Ok(Some(b.clone())),
      Some(v) => Err(type_err(&o.field_path(name), "a PEM string or Buffer", v)),
    }
  };
  let insecure = match o.get("rejectUnauthorized") {
    None | Some(Value::Bool(true)) => false,
    Some(Value::Bool(false)) => true,
    Some(v) => {
      return Err(type_err(
        &o.field_path("rejectUnauthorized"),
        "a boolean",
        v,
      ))
    }
  };
  let servername = match o.get("servername") {
    None => None,
    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
    Some(v) => {
      return Err(type_err(
        &o.field_path("servername"),
        "a non-empty host name",
        v,
      ))
    }
  };
  let t = TlsConfig {
    ca: pem("ca")?,
    cert: pem("cert")?,
    key: pem("key")?,
    insecure,
    servername,
  };
  if t.cert.is_some() != t.key.is_some() {
    return Err(config_err(format!("{path}: cert and key go together")));
  }
  Ok(t)
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
