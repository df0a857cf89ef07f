use super::*;
use crate::core::ErrorKind;
use std::time::Duration;

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

fn err(json: &str) -> Error {
  parse_json(json).unwrap_err()
}

#[test]
fn redis_connection_forms() {
  let c = parse_json(
    r#"{"type":"redis","connection":{"host":"10.0.0.1","port":7000,"password":"p@ss","db":2}}"#,
  )
  .unwrap();
  let r = redis(&c);
  assert_eq!(r.nodes[0].label, "10.0.0.1:7000");
  assert_eq!(r.nodes[0].url, "redis://:p%40ss@10.0.0.1:7000/2");
  assert_eq!(
    (
      r.retry.count,
      r.retry.delay_ms,
      r.retry.jitter_ms,
      r.drift_factor
    ),
    (10, 200.0, 100.0, 0.01)
  );

  let c = parse_json(r#"{"lockConfig":{"type":"redis","connection":["redis://a:1","redis://u:secret@b:2/0","rediss://c"]}}"#).unwrap();
  let labels: Vec<_> = redis(&c).nodes.iter().map(|n| n.label.as_str()).collect();
  assert_eq!(labels, ["a:1", "b:2", "c:6379"]);
}

#[test]
fn redis_errors_name_the_field_and_hide_secrets() {
  let e = err(r#"{"type":"redis","connection":"http://u:secret@x"}"#);
  assert!(e.message.starts_with("connection"), "{}", e.message);
  assert!(!e.message.contains("secret"));
  assert_eq!(
    err(r#"{"type":"redis","connection":[]}"#).kind,
    ErrorKind::Config
  );
  let e = err(r#"{"type":"redis","connection":{"port":"6379"}}"#);
  assert_eq!(e.kind, ErrorKind::ConfigType);
  assert!(e.message.starts_with("connection.port"));
  let e = err(r#"{"type":"redis","lockOptions":{"retryCount":1.5}}"#);
  assert_eq!(e.kind, ErrorKind::ConfigRange);
  assert!(e.message.starts_with("lockOptions.retryCount"));
  let e = err(r#"{"type":"redis","lockOptions":{"driftFactor":-1}}"#);
  assert!(e.message.starts_with("lockOptions.driftFactor"));
  let e = err(r#"{"type":"redis","connection":{"host":""}}"#);
  assert_eq!(e.kind, ErrorKind::ConfigRange);
  assert!(e.message.starts_with("connection.host"), "{}", e.message);
}

#[test]
fn unknown_and_misplaced_fields_are_errors() {
  for (json, field) in [
    (
      r#"{"type":"redis","connection":{"hots":"x"}}"#,
      "connection.hots",
    ),
    (
      r#"{"type":"redis","connection":{"cluster":[]}}"#,
      "connection.cluster",
    ),
    (
      r#"{"type":"redis","connection":{"sentinels":[]}}"#,
      "connection.sentinels",
    ),
    (
      r#"{"type":"redis","connection":{"cluster":[{"host":"a"}],"db":1}}"#,
      "connection.db",
    ),
    (r#"{"retyr":3}"#, "retyr"),
    (r#"{"lockConfig":{"tpye":"redis"}}"#, "lockConfig.tpye"),
    (
      r#"{"lockOptions":{"retryCont":3}}"#,
      "lockOptions.retryCont",
    ),
    (r#"{"type":"redis","scope":"bogus"}"#, "scope"),
    (
      r#"{"lockConfig":{"type":"redis","scope":"process"}}"#,
      "lockConfig.scope",
    ),
    (r#"{"connection":{"host":"x"}}"#, "connection"),
  ] {
    let e = err(json);
    assert_eq!(e.kind, ErrorKind::Config, "{json}");
    assert!(e.message.starts_with(field), "{json}: {}", e.message);
  }
}

#[test]
fn flat_retry_and_delay_apply_to_redis_and_conflicts_are_errors() {
  let c = parse_json(r#"{"type":"redis","retry":0,"delay":50}"#).unwrap();
  assert_eq!((redis(&c).retry.count, redis(&c).retry.delay_ms), (0, 50.0));
  let c = parse_json(r#"{"lockConfig":{"type":"redis","retry":2}}"#).unwrap();
  assert_eq!(redis(&c).retry.count, 2);
  let e = err(r#"{"type":"redis","retry":"x"}"#);
  assert_eq!(e.kind, ErrorKind::ConfigType);
  assert!(e.message.starts_with("retry"));
  let e = err(r#"{"lockConfig":{"type":"redis","delay":-5}}"#);
  assert_eq!(e.kind, ErrorKind::ConfigRange);
  assert!(e.message.starts_with("lockConfig.delay"), "{}", e.message);
  let e = err(r#"{"type":"redis","retry":1,"lockOptions":{"retryCount":2}}"#);
  assert!(e.message.contains("same option"), "{}", e.message);
}

#[test]
fn defaults_to_in_memory_with_redlock_budget() {
  let c = parse_json("{}").unwrap();
  assert_eq!(c.backend.type_name(), "inMemory");
  assert_eq!(mem(&c).retry, 10);
  assert_eq!(mem(&c).wait(), Some(Duration::from_millis(2000)));
  assert_eq!(c.default_ttl_ms, 10_000.0);
  assert_eq!(mem(&c).scope, Scope::Instance);
}

#[test]
fn lock_config_string_wins_over_flat_fields() {
  let c = parse_json(
    r#"{"namespace":"app","retry":5,"lockConfig":"{\"type\":\"inMemory\",\"retry\":0,\"delay\":50}"}"#,
  )
  .unwrap();
  assert_eq!(c.namespace.as_deref(), Some("app"));
  assert_eq!(mem(&c).retry, 0);
  assert_eq!(mem(&c).wait(), Some(Duration::ZERO));
}

#[test]
fn negative_retry_waits_forever() {
  assert_eq!(mem(&parse_json(r#"{"retry":-1}"#).unwrap()).wait(), None);
}

#[test]
fn redlock_option_names_are_accepted_for_in_memory() {
  let c = parse_json(r#"{"lockOptions":{"retryCount":3,"retryDelay":10}}"#).unwrap();
  assert_eq!(mem(&c).wait(), Some(Duration::from_millis(30)));
}

#[test]
fn errors_name_the_field() {
  let e = err(r#"{"type":"mongo"}"#);
  assert_eq!(e.kind, ErrorKind::Config);
  assert!(e.message.contains("type") && e.message.contains("mongo"));
  let e = err(r#"{"lockConfig":"{nope"}"#);
  assert!(e.message.contains("lockConfig"));
  let e = err(r#"{"lockConfig":{"retry":"3"}}"#);
  assert_eq!(e.kind, ErrorKind::ConfigType);
  assert!(e.message.starts_with("lockConfig.retry"), "{}", e.message);
  let e = parse(&Value::Object(vec![(
    "delay".into(),
    Value::Number(f64::NAN),
  )]))
  .unwrap_err();
  assert_eq!(e.kind, ErrorKind::ConfigRange);
  assert!(e.message.contains("delay") && e.message.contains("NaN"));
  assert_eq!(err(r#"{"retry":1.5}"#).kind, ErrorKind::ConfigRange);
  let e = parse(&Value::Object(vec![(
    "namespace".into(),
    Value::Other("bigint"),
  )]))
  .unwrap_err();
  assert_eq!(e.kind, ErrorKind::ConfigType);
  assert!(e.message.contains("bigint"));
  assert_eq!(err(r#"[1]"#).kind, ErrorKind::ConfigType);
  let e = err(r#"{"namespace":""}"#);
  assert_eq!(e.kind, ErrorKind::ConfigRange);
  assert!(e.message.starts_with("namespace"));
}

#[test]
fn a_url_that_does_not_parse_shows_no_part_of_its_authority() {
  for url in [
    "redis://:s3cret/x@db.example:6379",
    "redis://admin:pa#ss@db.example",
  ] {
    let json = format!(r#"{{"type":"redis","connection":"{url}"}}"#);
    let shown = match parse_json(&json) {
      Err(e) => e.message,
      Ok(c) => redis(&c).nodes[0].label.clone(),
    };
    assert!(
      !shown.contains("s3cret") && !shown.contains("admin:pa"),
      "{shown}"
    );
  }
}

#[test]
fn debug_output_holds_no_credentials_or_keys() {
  let c = parse_json(
    r#"{"type":"redis","connection":{"host":"h","password":"pw-redis-1","tls":{"key":"KEY-PEM-1","cert":"CERT"}}}"#,
  )
  .unwrap();
  let s = format!("{:?}", redis(&c));
  assert!(!s.contains("pw-redis-1") && !s.contains("KEY-PEM-1"), "{s}");
  let c = parse_json(
    r#"{"type":"redis","connection":{"sentinels":[{"host":"s"}],"name":"m","password":"pw-sentinel-2"}}"#,
  )
  .unwrap();
  let s = format!("{:?}", redis(&c));
  assert!(!s.contains("pw-sentinel-2"), "{s}");
}
