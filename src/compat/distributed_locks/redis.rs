//! distributed-locks' RedisStorage: key `<prefix>:<key>` holding the lock's value, taken
//! only when absent with an expiry (old processes use `SET NX EX`, we use ms so that a
//! fractional ttl works), released only while it holds our value.

use redis::cmd;
use std::sync::Arc;

use crate::compat::{int, values, Client};
use crate::core::Outcome;
use crate::redis::scripts::RELEASE;
use crate::redis::Op;

/// `SET key value NX PX ttl`. `ints[0]`: 1 if taken.
pub async fn set(c: Arc<Client>, key: String, value: String, ttl_ms: u64) -> Outcome {
  let op = Op::Command(
    cmd("SET")
      .arg(&key)
      .arg(&value)
      .arg("NX")
      .arg("PX")
      .arg(ttl_ms)
      .to_owned(),
  );
  values(
    c.run(vec![op])
      .await
      .map(|r| (vec![int(&r[0])], Vec::new())),
  )
}

/// Deletes the key if it holds `value`. `ints[0]`: 1 if deleted.
pub async fn unset(c: Arc<Client>, key: String, value: String) -> Outcome {
  let op = Op::Script {
    script: &RELEASE,
    key: key.as_bytes().into(),
    args: vec![value],
  };
  values(
    c.run(vec![op])
      .await
      .map(|r| (vec![int(&r[0])], Vec::new())),
  )
}
