//! The Redis deployments beyond a list of servers: a master found through Sentinel
//! (`connection: { sentinels, name }`) and a Redis Cluster (`connection: { cluster }`).

use super::redis::{build_node, node_from_value, RedisNode, TlsConfig};
use super::value::{config_err, range_err, type_err, Obj, Value};
use crate::core::Error;

/// `connection: { sentinels, name, username, password, db, tls }`: the sentinels to ask
/// for the master of `name`, and how to connect to the master they name.
#[derive(Clone, PartialEq)]
pub struct SentinelSpec {
  pub sentinels: Vec<RedisNode>,
  pub name: String,
  pub(super) username: Option<String>,
  pub(super) password: Option<String>,
  pub(super) db: f64,
}

// By hand: the password must never reach a log line.
impl std::fmt::Debug for SentinelSpec {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("SentinelSpec")
      .field("sentinels", &self.sentinels)
      .field("name", &self.name)
      .field("username", &self.username)
      .field("db", &self.db)
      .finish_non_exhaustive()
  }
}

impl SentinelSpec {
  pub fn db(&self) -> i64 {
    self.db as i64
  }

  /// The master the sentinels named, as a node to connect to (credentials, db and TLS of
  /// the connection object).
  pub fn master_at(&self, node: &RedisNode, host: &str, port: u16) -> RedisNode {
    build_node(
      host,
      f64::from(port),
      self.db,
      self.username.as_deref(),
      self.password.as_deref(),
      node.tls.clone(),
    )
  }
}

pub(super) fn sentinel_from_object(
  m: &Obj,
  username: Option<&str>,
  password: Option<&str>,
  db: f64,
) -> Result<SentinelSpec, Error> {
  for f in ["host", "port"] {
    if m.get(f).is_some() {
      return Err(config_err(format!(
        "{} is not used with sentinels: they name the master",
        m.field_path(f)
      )));
    }
  }
  let path = m.field_path("sentinels");
  let sentinels = match m.get("sentinels") {
    Some(Value::Array(items)) if !items.is_empty() => items
      .iter()
      .enumerate()
      .map(|(i, v)| {
        let p = format!("{path}[{i}]");
        match node_from_value(v, &p)? {
          n if n.sentinel.is_some() => {
            Err(config_err(format!("{p}: a sentinel is reached directly")))
          }
          n => Ok(n),
        }
      })
      .collect::<Result<Vec<_>, _>>()?,
    Some(Value::Array(_)) => {
      return Err(config_err(format!(
        "{path} must list at least one sentinel"
      )))
    }
    None => {
      return Err(config_err(format!(
        "{path}: a master name needs the sentinels to ask"
      )))
    }
    Some(v) => {
      return Err(type_err(
        &path,
        "an array of { host, port } or redis:// URLs",
        v,
      ))
    }
  };
  let name = match m.get("name") {
    None => {
      return Err(config_err(format!(
        "{}: sentinels need the master's name",
        m.field_path("name")
      )))
    }
    Some(Value::String(s)) if !s.is_empty() => s.clone(),
    Some(Value::String(_)) => return Err(range_err(&m.field_path("name"), "must not be empty")),
    Some(v) => return Err(type_err(&m.field_path("name"), "a string", v)),
  };
  Ok(SentinelSpec {
    sentinels,
    name,
    username: username.map(str::to_string),
    password: password.map(str::to_string),
    db,
  })
}

pub(super) fn cluster_from_object(
  m: &Obj,
  username: Option<&str>,
  password: Option<&str>,
  db: f64,
  tls: Option<TlsConfig>,
) -> Result<RedisNode, Error> {
  for f in ["host", "port", "sentinels", "name"] {
    if m.get(f).is_some() {
      return Err(config_err(format!(
        "{} is not used with cluster: the seed nodes are listed in cluster",
        m.field_path(f)
      )));
    }
  }
  if db != 0.0 {
    return Err(config_err(format!(
      "{}: a Redis Cluster has only database 0",
      m.field_path("db")
    )));
  }
  let path = m.field_path("cluster");
  let seeds = match m.get("cluster") {
    Some(Value::Array(items)) if !items.is_empty() => items
      .iter()
      .enumerate()
      .map(|(i, v)| {
        let p = format!("{path}[{i}]");
        match v {
          // A URL carries its own credentials and scheme: the object's would be ignored.
          Value::String(_) if username.is_some() || password.is_some() || tls.is_some() => Err(config_err(format!(
            "{p}: give credentials and tls in the seed URLs or in the object with {{ host, port }} seeds, not both"
          ))),
          Value::String(_) => node_from_value(v, &p),
          Value::Object(_) => {
            let o = Obj::of(v, &p, "an object")?;
            o.only(&["host", "port"], &[])?;
            let host = o.string("host")?.unwrap_or("127.0.0.1");
            let port = o.number("port")?.map_or(6379.0, |(n, _)| n);
            Ok(build_node(host, port, 0.0, username, password, tls.clone()))
          }
          other => Err(type_err(&p, "{ host, port } or a redis:// URL", other)),
        }
      })
      .collect::<Result<Vec<_>, _>>()?,
    Some(Value::Array(_)) => {
      return Err(config_err(format!(
        "{path} must list at least one seed node"
      )))
    }
    _ => {
      return Err(type_err(
        &path,
        "an array of { host, port } or redis:// URLs",
        m.get("cluster").unwrap_or(&Value::Null),
      ))
    }
  };
  let label = format!("cluster {}", seeds[0].label);
  Ok(RedisNode {
    url: String::new(),
    label,
    tls,
    sentinel: None,
    cluster: Some(seeds),
  })
}
