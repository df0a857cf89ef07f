//! Parsing of the options given to `Lock.create()`: every rule about what a valid
//! configuration is lives here, with messages that name the offending field. The JS layer
//! hands the options over untouched (`napi::options` reads them into a `Value` tree).

mod memory;
mod mongo;
mod postgres;
mod redis;
mod redis_deployments;
mod value;

pub use memory::{InMemoryConfig, Scope};
pub use mongo::{mongo_target, scrub, MongoTarget};
pub use postgres::{
  database_from_value, table_name, PgDatabase, PostgresConfig, DEFAULT_PG_TIMEOUT_MS,
};
pub use redis::{
  node_from_value, RedisConfig, RedisNode, TlsConfig, DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_NODE_TIMEOUT_MS,
};
pub use value::{Obj, Value};

use crate::core::Error;
use value::{config_err, range_err, type_err};

/// Lock time-to-live used when `lock()` gets none (node-redlock has no default; 10 s is
/// redis-semaphore's and a safe bound for a forgotten unlock).
pub const DEFAULT_TTL_MS: f64 = 10_000.0;
/// node-redlock's retry defaults, also the in-memory budget: 10 retries of 200 ms.
pub const DEFAULT_RETRY: i64 = 10;
pub const DEFAULT_DELAY_MS: f64 = 200.0;
/// The largest ttl or wait we accept: setTimeout's limit (about 24.8 days).
pub const MAX_MS: f64 = 2_147_483_647.0;

/// The options `lockConfig` may hold; the top level also takes `lockConfig` itself.
const NESTED_FIELDS: &[&str] = &[
  "type",
  "namespace",
  "ttl",
  "retry",
  "delay",
  "scope",
  "connection",
  "lockOptions",
];

/// Every option name at any level, for the reader of JS objects (`napi::options`), which
/// walks only into these and reads them also where they are not enumerable (getters).
pub fn option_names() -> impl Iterator<Item = &'static str> {
  [
    NESTED_FIELDS,
    &["lockConfig"],
    memory::LOCK_OPTION_FIELDS,
    redis::REDIS_LOCK_OPTION_FIELDS,
    redis::CONNECTION_FIELDS,
    redis::TLS_FIELDS,
    postgres::PG_CONNECTION_FIELDS,
    postgres::PG_LOCK_OPTION_FIELDS,
  ]
  .into_iter()
  .flatten()
  .copied()
}
const TYPES: &str = "'inMemory', 'redis' or 'postgres'";

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
  Postgres(Box<PostgresConfig>),
}

impl Backend {
  pub fn type_name(&self) -> &'static str {
    match self {
      Backend::InMemory(_) => "inMemory",
      Backend::Redis(_) => "redis",
      Backend::Postgres(_) => "postgres",
    }
  }

  /// Attempts after the first (`retry` / `lockOptions.retryCount`); negative: no limit.
  pub fn retry_count(&self) -> i64 {
    match self {
      Backend::InMemory(m) => m.retry,
      Backend::Redis(r) => r.retry.count,
      Backend::Postgres(p) => p.retry.count,
    }
  }
}

/// How often and how far apart a remote store is asked again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
  /// Attempts after the first; negative means no limit.
  pub count: i64,
  pub delay_ms: f64,
  /// Each pause is `delay ± jitter` (node-redlock's symmetric jitter).
  pub jitter_ms: f64,
}

/// Looks a field up in `lockConfig` first, then in the flat options, with its path.
pub struct Source<'a> {
  pub root: Obj<'a>,
  pub nested: Option<Obj<'a>>,
}

impl<'a> Source<'a> {
  /// The object that holds `name` (lockConfig's if it has it), for typed reads.
  pub fn holder(&self, name: &str) -> Obj<'a> {
    match self.nested {
      Some(n) if n.get(name).is_some() => n,
      _ => self.root,
    }
  }

  pub fn get(&self, name: &str) -> Option<(&'a Value, String)> {
    let o = self.holder(name);
    o.get(name).map(|v| (v, o.field_path(name)))
  }

  pub fn number(&self, name: &str) -> Result<Option<(f64, String)>, Error> {
    self.holder(name).number(name)
  }

  /// Rejects a field that another backend type takes.
  pub fn refuse(&self, name: &str, type_name: &str) -> Result<(), Error> {
    match self.get(name) {
      None => Ok(()),
      Some((_, path)) => Err(config_err(format!(
        "{path} is not an option of type '{type_name}'"
      ))),
    }
  }
}

/// Parses the JSON text of the options (for `LOCK_CONFIG`-style strings and tests).
pub fn parse_json(json: &str) -> Result<Config, Error> {
  let v: serde_json::Value = serde_json::from_str(json)
    .map_err(|e| config_err(format!("options are not valid JSON: {e}")))?;
  parse(&Value::from_json(v))
}

/// Parses the options object given to `create()`.
pub fn parse(root: &Value) -> Result<Config, Error> {
  parse_as(root, "inMemory")
}

/// Parses options whose `type` defaults to `default_type` (a class constructor's).
pub fn parse_as(root: &Value, default_type: &str) -> Result<Config, Error> {
  let root = match root {
    Value::Null => Obj::EMPTY,
    other => {
      Obj::of(other, "", "an object").map_err(|_| type_err("options", "an object", other))?
    }
  };
  root.only(NESTED_FIELDS, &["lockConfig"])?;

  // `lockConfig`: an object, or the JSON string of a LOCK_CONFIG environment variable.
  let parsed_string;
  let nested = match root.get("lockConfig") {
    None => None,
    Some(Value::String(s)) => {
      let v: serde_json::Value = serde_json::from_str(s)
        .map_err(|e| config_err(format!("lockConfig is a string but not valid JSON ({e})")))?;
      parsed_string = Value::from_json(v);
      Some(Obj::of(
        &parsed_string,
        "lockConfig",
        "an object or its JSON string",
      )?)
    }
    Some(v) => Some(Obj::of(v, "lockConfig", "an object or its JSON string")?),
  };
  if let Some(n) = &nested {
    n.only(NESTED_FIELDS, &[])?;
  }
  let src = Source { root, nested };

  // `namespace` is a top-level option; `lockConfig.namespace` is accepted as a fallback.
  let ns_holder = if root.get("namespace").is_some() {
    root
  } else {
    nested.unwrap_or(root)
  };
  let namespace = match ns_holder.string("namespace")? {
    Some("") => {
      return Err(range_err(
        &ns_holder.field_path("namespace"),
        "must not be empty (leave it out for no namespace)",
      ))
    }
    other => other.map(str::to_owned),
  };
  let default_ttl_ms = match src.number("ttl")? {
    None => DEFAULT_TTL_MS,
    Some((n, _)) if n > 0.0 && n <= MAX_MS => n.ceil(),
    Some((n, path)) => {
      return Err(range_err(
        &path,
        &format!("must be > 0 and <= {MAX_MS} ms, got {n}"),
      ))
    }
  };

  let default = Value::String(default_type.to_string());
  let backend = match src.get("type").or(Some((&default, "type".into()))) {
    None => Backend::InMemory(memory::parse(&src)?),
    Some((Value::String(t), path)) => match t.as_str() {
      "inMemory" | "memory" | "in-memory" => Backend::InMemory(memory::parse(&src)?),
      "redis" => Backend::Redis(redis::parse(&src)?),
      "postgres" | "postgresql" => Backend::Postgres(Box::new(postgres::parse(&src)?)),
      other => {
        return Err(config_err(format!(
          "{path}: unknown lock type '{other}'; expected {TYPES}"
        )))
      }
    },
    Some((v, path)) => return Err(type_err(&path, &format!("a string ({TYPES})"), v)),
  };
  Ok(Config {
    namespace,
    default_ttl_ms,
    backend,
  })
}

/// `retry` and `delay` (@leverege/lock's names) or `lockOptions.retryCount` and
/// `retryDelay` (node-redlock's): the same two options under two names, for every type.
/// Giving both names of one is an error, so neither silently wins.
pub(crate) fn retry_and_delay(src: &Source, lock_options: Obj) -> Result<(i64, f64), Error> {
  let pick = |flat: &str, lo: &str| -> Result<Option<(f64, String)>, Error> {
    match (src.number(flat)?, lock_options.number(lo)?) {
      (Some((_, a)), Some((_, b))) => Err(config_err(format!(
        "{a} and {b} are the same option; give one of them"
      ))),
      (a, b) => Ok(a.or(b)),
    }
  };
  let retry = match pick("retry", "retryCount")? {
    None => DEFAULT_RETRY,
    Some((n, _)) if n.fract() == 0.0 && n.abs() <= 1e12 => n as i64,
    Some((n, path)) => return Err(range_err(&path, &format!("must be an integer, got {n}"))),
  };
  let delay = match pick("delay", "retryDelay")? {
    None => DEFAULT_DELAY_MS,
    Some((n, _)) if (0.0..=MAX_MS).contains(&n) => n,
    Some((n, path)) => {
      return Err(range_err(
        &path,
        &format!("must be between 0 and {MAX_MS} ms, got {n}"),
      ))
    }
  };
  Ok((retry, delay))
}

/// `lockOptions`, wherever it is given, or an empty object.
pub(crate) fn lock_options<'a>(src: &Source<'a>) -> Result<Obj<'a>, Error> {
  match src.get("lockOptions") {
    None => Ok(Obj::EMPTY),
    Some((v, _)) => {
      let holder = src.holder("lockOptions");
      let path: &'a str = if holder.path.is_empty() {
        "lockOptions"
      } else {
        "lockConfig.lockOptions"
      };
      Obj::of(v, path, "an object")
    }
  }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod postgres_tests;
