//! exclusive-lock's commands (one key `<prefix>:<name>` holding the lock contents, ms
//! everywhere), with the refresh as compare-and-PEXPIRE on our contents and release as
//! compare-and-delete, so a lock that was lost is never refreshed or deleted for someone
//! else. The refresh timer runs here: it reports `refreshed`, `lost`, `error`, `released`.

use redis::cmd;
use std::sync::Arc;
use std::time::Duration;

use super::{int, string, values, Client};
use crate::core::Outcome;
use crate::redis::scripts::{EXTEND, RELEASE};
use crate::redis::Op;

fn script(s: &'static redis::Script, key: &str, args: Vec<String>) -> Op {
  Op::Script {
    script: s,
    key: key.as_bytes().into(),
    args,
  }
}

/// `SET key contents PX ttl NX`; on success the refresh starts. `ints[0]`: 1 if acquired.
pub async fn acquire(
  c: Arc<Client>,
  key: String,
  contents: String,
  ttl_ms: u64,
  refresh_ms: u64,
) -> Outcome {
  let op = Op::Command(
    cmd("SET")
      .arg(&key)
      .arg(&contents)
      .arg("PX")
      .arg(ttl_ms)
      .arg("NX")
      .to_owned(),
  );
  let got = match c.run(vec![op]).await {
    Ok(r) => int(&r[0]),
    Err(e) => return Outcome::Failed(e),
  };
  if got == 1 {
    refresh(&c, key, contents, ttl_ms, Duration::from_millis(refresh_ms));
  }
  Outcome::Values {
    ints: vec![got],
    strs: Vec::new(),
  }
}

/// Every `every`, one refresh at a time (a slow one is never overlapped).
fn refresh(c: &Arc<Client>, key: String, contents: String, ttl_ms: u64, every: Duration) {
  let me = Arc::downgrade(c);
  let job = key.clone();
  c.start_job(&job, async move {
    loop {
      tokio::time::sleep(every).await;
      let Some(c) = me.upgrade() else { break };
      c.refreshing.lock().insert(key.clone());
      let op = script(&EXTEND, &key, vec![contents.clone(), ttl_ms.to_string()]);
      let reply = c.run(vec![op]).await;
      c.refreshing.lock().remove(&key);
      match reply {
        Ok(r) if int(&r[0]) == 1 => c.signal("refreshed", &key, None),
        Ok(_) => {
          c.signal("lost", &key, None);
          break;
        }
        Err(e) => {
          c.signal("error", &key, Some(e));
          let op = script(&RELEASE, &key, vec![contents.clone()]);
          match c.run(vec![op]).await {
            Ok(_) => c.signal("released", &key, None),
            Err(e) => c.signal("error", &key, Some(e)),
          }
          break;
        }
      }
    }
  });
}

/// Stops the refresh and deletes the key if it still holds our contents.
/// `ints[0]`: 1 if it was deleted.
pub async fn release(c: Arc<Client>, key: String, contents: String) -> Outcome {
  c.stop_job(&key);
  let op = script(&RELEASE, &key, vec![contents]);
  values(
    c.run(vec![op])
      .await
      .map(|r| (vec![int(&r[0])], Vec::new())),
  )
}

/// `GET key` and `PTTL key`: `strs[0]` the contents (None: no lock), `ints[0]` the ttl.
pub async fn inspect(c: Arc<Client>, key: String) -> Outcome {
  let ops = vec![
    Op::Command(cmd("GET").arg(&key).to_owned()),
    Op::Command(cmd("PTTL").arg(&key).to_owned()),
  ];
  values(
    c.run(ops)
      .await
      .map(|r| (vec![int(&r[1])], vec![string(&r[0])])),
  )
}
