//! What MongoStorage connects to: a `mongodb://` connection string (parsed by the driver),
//! a database and a collection, with bounds on every wait. Upstream passed the URL to the
//! Node driver as it was and had no bounds of its own: a server that cannot be reached
//! made each call wait for the Node driver's 30 s server selection.

use mongodb::options::{ClientOptions, ConnectionString, HostInfo};
use std::time::Duration;

use super::value::{config_err, range_err};
use crate::core::Error;

/// How long an operation waits for a server to be selected (reachable and writable).
pub const DEFAULT_MONGO_SELECTION_TIMEOUT_MS: u64 = 3000;
/// How long opening one connection (TCP, TLS, handshake) may take.
pub const DEFAULT_MONGO_CONNECT_TIMEOUT_MS: u64 = 2000;
/// The bound on a whole operation, answer included (the Rust driver has no socket
/// timeout): a paused or half-dead server never holds a call longer.
pub const DEFAULT_MONGO_OP_TIMEOUT_MS: u64 = 5000;
/// The Node driver's default when the URL names no database.
pub const DEFAULT_MONGO_DATABASE: &str = "test";

#[derive(Clone)]
pub struct MongoTarget {
  pub options: ClientOptions,
  pub database: String,
  pub collection: String,
  /// `host:port[,host:port...]`, for messages.
  pub label: String,
  /// The bound on one operation (`socketTimeoutMS` in the URL sets it).
  pub op_timeout: Duration,
  /// The password as written in the URL and as decoded: never shown, messages are
  /// scrubbed of both.
  pub secrets: Vec<String>,
}

/// Parses `url` and checks the names. `database` None: the URL's database, else "test".
/// Timeouts the URL sets (`serverSelectionTimeoutMS`, `connectTimeoutMS`,
/// `socketTimeoutMS`) are kept; the others get the bounds above.
pub fn mongo_target(
  url: &str,
  database: Option<&str>,
  collection: &str,
) -> Result<MongoTarget, Error> {
  let mut secrets: Vec<String> = url_password(url)
    .into_iter()
    .filter(|p| !p.is_empty())
    .collect();
  let clean = |m: String| scrub(m, &secrets);
  let mut conn = ConnectionString::parse(url).map_err(|e| {
    config_err(clean(format!(
      "url is not a MongoDB connection string: {}",
      e.kind
    )))
  })?;
  if let HostInfo::DnsRecord(_) = conn.host_info {
    return Err(config_err(
      "url: mongodb+srv:// needs a DNS SRV lookup, which this build does not include; \
       give the hosts as mongodb://host1:port1,host2:port2/?replicaSet=..."
        .to_string(),
    ));
  }
  // The Rust driver refuses socketTimeoutMS; it bounds our operations instead.
  #[allow(deprecated)]
  let op_timeout = conn
    .socket_timeout
    .take()
    .filter(|d| !d.is_zero())
    .unwrap_or(Duration::from_millis(DEFAULT_MONGO_OP_TIMEOUT_MS));
  let mut options = crate::core::runtime::runtime()
    .block_on(std::future::IntoFuture::into_future(ClientOptions::parse(
      conn,
    )))
    .map_err(|e| config_err(clean(format!("url is not usable: {}", e.kind))))?;
  if let Some(p) = options.credential.as_ref().and_then(|c| c.password.clone()) {
    if !p.is_empty() && !secrets.contains(&p) {
      secrets.push(p);
    }
  }
  if options.server_selection_timeout.is_none() {
    options.server_selection_timeout =
      Some(Duration::from_millis(DEFAULT_MONGO_SELECTION_TIMEOUT_MS));
  }
  if options.connect_timeout.is_none() {
    options.connect_timeout = Some(Duration::from_millis(DEFAULT_MONGO_CONNECT_TIMEOUT_MS));
  }
  if options.app_name.is_none() {
    options.app_name = Some("oxlock".to_string());
  }
  let database = match database {
    Some(d) => d.to_string(),
    None => options
      .default_database
      .clone()
      .unwrap_or_else(|| DEFAULT_MONGO_DATABASE.to_string()),
  };
  database_name(&database, "database")?;
  collection_name(collection, "collectionName")?;
  let label = options
    .hosts
    .iter()
    .map(|h| h.to_string())
    .collect::<Vec<_>>()
    .join(",");
  Ok(MongoTarget {
    options,
    database,
    collection: collection.to_string(),
    label,
    op_timeout,
    secrets,
  })
}

/// MongoDB's rules for a database name.
pub fn database_name(d: &str, path: &str) -> Result<(), Error> {
  let ok = !d.is_empty() && d.len() < 64 && !d.contains(['/', '\\', '.', ' ', '"', '$', '\0']);
  if ok {
    Ok(())
  } else {
    Err(range_err(
      path,
      &format!("must be 1 to 63 bytes without / \\ . space \" $, got {d:?}"),
    ))
  }
}

/// MongoDB's rules for a collection name.
pub fn collection_name(c: &str, path: &str) -> Result<(), Error> {
  let ok = !c.is_empty() && !c.contains(['$', '\0']) && !c.starts_with("system.");
  if ok {
    Ok(())
  } else {
    Err(range_err(
      path,
      &format!("must be a non-empty name without $, not starting with \"system.\", got {c:?}"),
    ))
  }
}

/// `message` with every secret replaced by `***`.
pub fn scrub(message: String, secrets: &[String]) -> String {
  secrets.iter().fold(message, |m, s| {
    if m.contains(s.as_str()) {
      m.replace(s.as_str(), "***")
    } else {
      m
    }
  })
}

// By hand: the secrets must never reach a log line (the driver's options hide theirs).
impl std::fmt::Debug for MongoTarget {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("MongoTarget")
      .field("options", &self.options)
      .field("database", &self.database)
      .field("collection", &self.collection)
      .field("label", &self.label)
      .field("op_timeout", &self.op_timeout)
      .finish_non_exhaustive()
  }
}

/// The password of `mongodb://user:password@host` as written, to keep it out of messages.
fn url_password(url: &str) -> Option<String> {
  let rest = url.split_once("://")?.1;
  let (userinfo, _) = rest.rsplit_once('@')?;
  let (_, password) = userinfo.split_once(':')?;
  Some(password.to_string())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_plain_url_gets_our_bounds_and_the_default_database() {
    let t = mongo_target("mongodb://127.0.0.1:27017", None, "locks").unwrap();
    assert_eq!(t.database, "test");
    assert_eq!(t.collection, "locks");
    assert_eq!(t.label, "127.0.0.1:27017");
    assert_eq!(
      t.op_timeout,
      Duration::from_millis(DEFAULT_MONGO_OP_TIMEOUT_MS)
    );
    assert_eq!(
      t.options.server_selection_timeout,
      Some(Duration::from_millis(DEFAULT_MONGO_SELECTION_TIMEOUT_MS))
    );
    assert_eq!(
      t.options.connect_timeout,
      Some(Duration::from_millis(DEFAULT_MONGO_CONNECT_TIMEOUT_MS))
    );
  }

  #[test]
  fn the_url_s_database_and_timeouts_are_kept() {
    let t = mongo_target(
      "mongodb://a:1,b:2/app?serverSelectionTimeoutMS=1500&connectTimeoutMS=700&socketTimeoutMS=900",
      None,
      "locks",
    )
    .unwrap();
    assert_eq!(t.database, "app");
    assert_eq!(t.label, "a:1,b:2");
    assert_eq!(t.op_timeout, Duration::from_millis(900));
    assert_eq!(
      t.options.server_selection_timeout,
      Some(Duration::from_millis(1500))
    );
    assert_eq!(t.options.connect_timeout, Some(Duration::from_millis(700)));
    let t = mongo_target("mongodb://a:1/app", Some("other"), "c").unwrap();
    assert_eq!(t.database, "other");
  }

  #[test]
  fn bad_urls_and_names_are_config_errors_without_the_password() {
    use crate::core::ErrorKind;
    let e = mongo_target("http://u:s3cret@h", None, "locks").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(!e.message.contains("s3cret"), "{}", e.message);
    let e = mongo_target("mongodb://u:s3cret@h:notaport", None, "locks").unwrap_err();
    assert!(!e.message.contains("s3cret"), "{}", e.message);
    let e = mongo_target("mongodb+srv://cluster.example.net", None, "locks").unwrap_err();
    assert!(e.message.contains("mongodb+srv"), "{}", e.message);
    for bad in ["", "a.b", "a b", "a$b", &"x".repeat(64)] {
      let e = mongo_target("mongodb://h", Some(bad), "locks").unwrap_err();
      assert_eq!(e.kind, ErrorKind::ConfigRange, "{bad:?}");
    }
    for bad in ["", "a$b", "system.x"] {
      let e = mongo_target("mongodb://h", None, bad).unwrap_err();
      assert_eq!(e.kind, ErrorKind::ConfigRange, "{bad:?}");
    }
    assert!(mongo_target("mongodb://h", None, "my.locks").is_ok());
  }

  #[test]
  fn the_password_is_found() {
    assert_eq!(
      url_password("mongodb://u:p%40ss@h/db").as_deref(),
      Some("p%40ss")
    );
    assert_eq!(url_password("mongodb://u@h/db"), None);
    assert_eq!(url_password("mongodb://h/db"), None);
  }
}
