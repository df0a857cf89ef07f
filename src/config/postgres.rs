//! Options of `type: 'postgres'`: one database (a URL or `{ host, port, user, password,
//! database, ssl }`), node-redlock's retry names, and the pool's size and timeouts.

use std::str::FromStr;

use super::redis::{tls_from_object, TlsConfig, DEFAULT_RETRY_JITTER_MS};
use super::value::{config_err, range_err, type_err, Obj, Value};
use super::{lock_options, retry_and_delay, RetryPolicy, Source, MAX_MS};
use crate::core::Error;

pub const DEFAULT_POOL_SIZE: f64 = 4.0;
/// A new PostgreSQL connection costs a process fork on the server: slower than Redis's.
pub const DEFAULT_PG_CONNECT_TIMEOUT_MS: f64 = 2000.0;
pub const DEFAULT_QUERY_TIMEOUT_MS: f64 = 2000.0;
/// The drop-in storage's connect and statement bound (upstream had none).
pub const DEFAULT_PG_TIMEOUT_MS: f64 = 5000.0;
pub const DEFAULT_TABLE: &str = "oxlock_locks";

pub(super) const PG_CONNECTION_FIELDS: &[&str] = &[
  "host", "port", "user", "username", "password", "database", "ssl",
];
pub(super) const PG_LOCK_OPTION_FIELDS: &[&str] = &[
  "retryCount",
  "retryDelay",
  "retryJitter",
  "connectTimeout",
  "queryTimeout",
  "poolSize",
  "tableName",
];

#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
  pub db: PgDatabase,
  pub retry: RetryPolicy,
  pub pool_size: usize,
  pub connect_timeout_ms: f64,
  /// Bound on one statement: a paused or unreachable server never holds a call longer.
  pub query_timeout_ms: f64,
  /// The lock table (and, with `_fence`, its sequence; also the NOTIFY channel).
  pub table: String,
}

/// One PostgreSQL database.
#[derive(Debug, Clone, PartialEq)]
pub struct PgDatabase {
  /// What the driver connects with (its `Debug` hides the password).
  pub config: tokio_postgres::Config,
  /// `host:port`, for messages.
  pub label: String,
  pub tls: Option<TlsConfig>,
}

pub(super) fn parse(src: &Source) -> Result<PostgresConfig, Error> {
  src.refuse("scope", "postgres")?;
  let db = match src.get("connection") {
    None => database_from_object(Obj::EMPTY, "connection")?,
    Some((v, path)) => database_from_value(v, &path)?,
  };
  let lo = lock_options(src)?;
  lo.only(PG_LOCK_OPTION_FIELDS, &[])?;
  let (count, delay_ms) = retry_and_delay(src, lo)?;
  let table = match lo.string("tableName")? {
    None => DEFAULT_TABLE.to_string(),
    Some(t) => table_name(t, &lo.field_path("tableName"))?,
  };
  Ok(PostgresConfig {
    db,
    retry: RetryPolicy {
      count,
      delay_ms,
      jitter_ms: lo.number_in("retryJitter", DEFAULT_RETRY_JITTER_MS, 0.0, MAX_MS)?,
    },
    pool_size: pool_size(lo)?,
    connect_timeout_ms: lo.number_in(
      "connectTimeout",
      DEFAULT_PG_CONNECT_TIMEOUT_MS,
      1.0,
      MAX_MS,
    )?,
    query_timeout_ms: lo.number_in("queryTimeout", DEFAULT_QUERY_TIMEOUT_MS, 1.0, MAX_MS)?,
    table,
  })
}

fn pool_size(lo: Obj) -> Result<usize, Error> {
  let n = lo.number_in("poolSize", DEFAULT_POOL_SIZE, 1.0, 1000.0)?;
  if n.fract() != 0.0 {
    return Err(range_err(
      &lo.field_path("poolSize"),
      &format!("must be an integer, got {n}"),
    ));
  }
  Ok(n as usize)
}

/// A table name used as one quoted identifier: letters, digits and `_`, at most 48
/// characters so that `<table>_fence` and `<table>_pkey` fit PostgreSQL's 63.
pub fn table_name(t: &str, path: &str) -> Result<String, Error> {
  let ok = !t.is_empty()
    && t.len() <= 48
    && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    && !t.as_bytes()[0].is_ascii_digit();
  if ok {
    Ok(t.to_string())
  } else {
    Err(range_err(
      path,
      &format!("must be 1 to 48 letters, digits or _, not starting with a digit, got {t:?}"),
    ))
  }
}

/// A database: a `postgres://` URL or an object (also what PostgresqlStorage takes).
pub fn database_from_value(v: &Value, path: &str) -> Result<PgDatabase, Error> {
  match v {
    Value::String(url) => database_from_url(url, path),
    Value::Object(_) => database_from_object(Obj::of(v, path, "an object")?, path),
    other => Err(type_err(
      path,
      "an object { host, port, user, ... } or a postgres:// URL",
      other,
    )),
  }
}

fn database_from_url(url: &str, path: &str) -> Result<PgDatabase, Error> {
  if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    return Err(config_err(format!(
      "{path} must start with postgres:// or postgresql://"
    )));
  }
  // Nothing of a URL that does not parse is shown: it may hold a password. An `@`, `/`,
  // `?` or `#` left unencoded in the user or password would move part of the password
  // into the host (and so into messages): refused.
  let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
  if let Some(at) = rest.rfind('@') {
    if rest[..at].contains(['@', '/', '?', '#']) {
      return Err(config_err(format!(
        "{path}: the user name and password of a postgres:// URL must be percent-encoded"
      )));
    }
  }
  let (url, tls) = ssl_from_url(url, path)?;
  let config = tokio_postgres::Config::from_str(&url)
    .map_err(|_| config_err(format!("{path} is not a valid PostgreSQL URL")))?;
  finish(config, tls, path)
}

/// The URL's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, as libpq reads them, taken
/// out of the URL: `require` encrypts without checking the certificate (unless
/// `sslrootcert` is given), `verify-ca` / `verify-full` check it against `sslrootcert` or
/// the system roots; `disable`, `allow` and `prefer` (libpq's default) connect without TLS
/// (oxlock never falls back from TLS to plain text on its own).
fn ssl_from_url(url: &str, path: &str) -> Result<(String, Option<TlsConfig>), Error> {
  let Some((base, query)) = url.split_once('?') else {
    return Ok((url.to_string(), None));
  };
  let (mut mode, mut files) = (None, [None, None, None]);
  let mut kept = Vec::new();
  for pair in query.split('&') {
    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
    match k {
      "sslmode" => mode = Some(v.to_string()),
      "sslrootcert" => files[0] = Some(v.to_string()),
      "sslcert" => files[1] = Some(v.to_string()),
      "sslkey" => files[2] = Some(v.to_string()),
      _ => kept.push(pair),
    }
  }
  let read = |name: &str, file: &Option<String>| -> Result<Option<Vec<u8>>, Error> {
    file
      .as_ref()
      .map(|f| {
        std::fs::read(f).map_err(|e| config_err(format!("{path}: cannot read {name} {f:?}: {e}")))
      })
      .transpose()
  };
  let tls = match mode.as_deref() {
    None | Some("disable" | "allow" | "prefer") => None,
    Some(m @ ("require" | "verify-ca" | "verify-full")) => Some(TlsConfig {
      ca: read("sslrootcert", &files[0])?,
      cert: read("sslcert", &files[1])?,
      key: read("sslkey", &files[2])?,
      insecure: m == "require" && files[0].is_none(),
      servername: None,
    }),
    Some(other) => {
      return Err(config_err(format!(
        "{path}: sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
      )))
    }
  };
  let url = if kept.is_empty() {
    base.to_string()
  } else {
    format!("{base}?{}", kept.join("&"))
  };
  Ok((url, tls))
}

fn database_from_object(m: Obj, path: &str) -> Result<PgDatabase, Error> {
  let m = Obj { path, ..m };
  m.only(PG_CONNECTION_FIELDS, &[])?;
  let mut config = tokio_postgres::Config::new();
  match m.string("host")? {
    None => config.host("127.0.0.1"),
    Some("") => return Err(range_err(&m.field_path("host"), "must not be empty")),
    Some(h) => config.host(h),
  };
  match m.number("port")? {
    None => config.port(5432),
    Some((n, _)) if n.fract() == 0.0 && (1.0..=65535.0).contains(&n) => config.port(n as u16),
    Some((n, p)) => return Err(range_err(&p, &format!("must be a port number, got {n}"))),
  };
  let user = match (m.string("user")?, m.string("username")?) {
    (Some(_), Some(_)) => {
      return Err(config_err(format!(
        "{} and {} are the same option; give one of them",
        m.field_path("user"),
        m.field_path("username")
      )))
    }
    (u, n) => u.or(n).unwrap_or("postgres"),
  };
  config.user(user);
  if let Some(p) = m.string("password")? {
    config.password(p);
  }
  config.dbname(m.string("database")?.unwrap_or(user));
  let tls = match m.get("ssl") {
    None | Some(Value::Bool(false)) => None,
    Some(Value::Bool(true)) => Some(TlsConfig::default()),
    Some(v @ Value::Object(_)) => {
      let t = tls_from_object(Obj::of(v, "", "")?, &m.field_path("ssl"))?;
      if t.servername.is_some() {
        return Err(config_err(format!(
          "{}.servername is not supported for PostgreSQL (the host name is checked)",
          m.field_path("ssl")
        )));
      }
      Some(t)
    }
    Some(v) => {
      return Err(type_err(
        &m.field_path("ssl"),
        "a boolean or { ca, cert, key, rejectUnauthorized }",
        v,
      ))
    }
  };
  finish(config, tls, path)
}

fn finish(
  mut config: tokio_postgres::Config,
  tls: Option<TlsConfig>,
  path: &str,
) -> Result<PgDatabase, Error> {
  use tokio_postgres::config::{Host, SslMode};
  let host = match config.get_hosts().first() {
    Some(Host::Tcp(h)) => h.clone(),
    #[cfg(unix)]
    Some(Host::Unix(p)) => p.display().to_string(),
    None => {
      config.host("127.0.0.1");
      "127.0.0.1".into()
    }
  };
  if config.get_hosts().len() > 1 {
    return Err(config_err(format!("{path} must name one host")));
  }
  let port = config.get_ports().first().copied().unwrap_or(5432);
  config.ssl_mode(if tls.is_some() {
    SslMode::Require
  } else {
    SslMode::Disable
  });
  config.application_name("oxlock");
  let host_in_label = if host.contains(':') {
    format!("[{host}]")
  } else {
    host
  };
  Ok(PgDatabase {
    config,
    label: format!("{host_in_label}:{port}"),
    tls,
  })
}
