use super::*;
use crate::core::ErrorKind;

fn pg(json: &str) -> PostgresConfig {
  match parse_json(json).unwrap().backend {
    Backend::Postgres(p) => *p,
    other => panic!("expected postgres, got {other:?}"),
  }
}

fn err(json: &str) -> Error {
  parse_json(json).unwrap_err()
}

#[test]
fn postgres_defaults_and_forms() {
  let p = pg(r#"{"type":"postgres"}"#);
  assert_eq!(p.db.label, "127.0.0.1:5432");
  assert_eq!(p.db.config.get_user(), Some("postgres"));
  assert_eq!(p.db.config.get_dbname(), Some("postgres"));
  assert_eq!((p.pool_size, p.table.as_str()), (4, "oxlock_locks"));
  assert_eq!((p.retry.count, p.retry.delay_ms), (10, 200.0));
  assert!(p.db.tls.is_none());

  let p = pg(
    r#"{"lockConfig":{"type":"postgres","connection":{"host":"db","port":6543,"username":"app","password":"s3cret","database":"locks","ssl":true},
        "lockOptions":{"poolSize":9,"queryTimeout":300,"tableName":"my_locks","retryCount":-1}}}"#,
  );
  assert_eq!(p.db.label, "db:6543");
  assert_eq!(p.db.config.get_user(), Some("app"));
  assert_eq!(p.db.config.get_dbname(), Some("locks"));
  assert!(p.db.tls.is_some());
  assert_eq!(
    (
      p.pool_size,
      p.query_timeout_ms,
      p.table.as_str(),
      p.retry.count
    ),
    (9, 300.0, "my_locks", -1)
  );
  // The password is kept for the driver and never printed.
  assert!(!format!("{:?}", p.db).contains("s3cret"));

  let p =
    pg(r#"{"type":"postgres","connection":"postgresql://u:pw@10.1.2.3:7777/d?sslmode=require"}"#);
  assert_eq!(p.db.label, "10.1.2.3:7777");
  assert!(p.db.tls.is_some());
}

#[test]
fn postgres_bad_options_name_the_field() {
  let e = err(r#"{"type":"postgres","connection":{"hots":"x"}}"#);
  assert_eq!(e.kind, ErrorKind::Config);
  assert!(e.message.contains("connection.hots"), "{}", e.message);

  let e = err(r#"{"type":"postgres","lockOptions":{"poolSize":0}}"#);
  assert_eq!(e.kind, ErrorKind::ConfigRange);
  assert!(e.message.contains("lockOptions.poolSize"), "{}", e.message);

  let e = err(r#"{"type":"postgres","lockOptions":{"tableName":"x; drop table y"}}"#);
  assert_eq!(e.kind, ErrorKind::ConfigRange);

  let e = err(r#"{"type":"postgres","connection":"postgres://u:hunter2@[bad"}"#);
  assert_eq!(e.kind, ErrorKind::Config);
  assert!(!e.message.contains("hunter2"), "{}", e.message);

  let e = err(r#"{"type":"postgres","connection":"redis://x"}"#);
  assert!(e.message.contains("postgres://"), "{}", e.message);

  // Options of other types are refused by name.
  let e = err(r#"{"type":"postgres","lockOptions":{"driftFactor":0.1}}"#);
  assert!(e.message.contains("driftFactor"), "{}", e.message);
  let e = err(r#"{"type":"redis","lockOptions":{"poolSize":3}}"#);
  assert!(e.message.contains("poolSize"), "{}", e.message);

  let e = err(r#"{"type":"postgres","connection":{"user":"a","username":"b"}}"#);
  assert!(e.message.contains("same option"), "{}", e.message);
}

#[test]
fn postgres_url_tls_modes_and_unencoded_passwords() {
  let tls = |url: &str| {
    pg(&format!(r#"{{"type":"postgres","connection":"{url}"}}"#))
      .db
      .tls
  };
  assert_eq!(tls("postgres://h/d"), None);
  assert_eq!(tls("postgres://h/d?sslmode=prefer"), None);
  // libpq's require: encrypted, the certificate unchecked.
  assert!(tls("postgres://h/d?sslmode=require").is_some_and(|t| t.insecure));
  assert!(tls("postgres://h/d?sslmode=verify-full&connect_timeout=3").is_some_and(|t| !t.insecure));
  let e = err(r#"{"type":"postgres","connection":"postgres://h/d?sslmode=maybe"}"#);
  assert!(e.message.contains("sslmode=maybe"), "{}", e.message);
  let e = err(
    r#"{"type":"postgres","connection":"postgres://h/d?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem"}"#,
  );
  assert!(e.message.contains("sslrootcert"), "{}", e.message);
  // An unencoded @ or / in the password would put part of it into the host name.
  for url in [
    "postgres://app:se@cret@127.0.0.1:1/d",
    "postgres://app:se/cret@127.0.0.1/d",
  ] {
    let e = err(&format!(r#"{{"type":"postgres","connection":"{url}"}}"#));
    assert!(e.message.contains("percent-encoded"), "{}", e.message);
    assert!(!e.message.contains("cret"), "{}", e.message);
  }
}
