//! fast-locky's commands (keys `[name:]lock:resource:<r>`, a tracking SET of held keys),
//! with the ttl applied at lock time in ms, and `expire` reported once per real expiry:
//! the process whose `SREM` removes a vanished key from the set is the one that reports it.

use redis::cmd;
use std::sync::Arc;
use std::time::Duration;

use super::{int, string, strings, values, Client};
use crate::core::{Error, Outcome};
use crate::redis::Op;

/// Per item `SADD set key` and `SET key locker [NX] [PX ttl]`, all in one round trip.
/// `ints[i]`: 1 if item i was locked.
pub async fn lock(
  c: Arc<Client>,
  set: String,
  items: Vec<(String, String)>,
  force: bool,
  ttl_ms: Option<u64>,
) -> Outcome {
  let mut ops = Vec::with_capacity(items.len() * 2);
  for (key, locker) in &items {
    ops.push(Op::Command(cmd("SADD").arg(&set).arg(key).to_owned()));
    let mut set_cmd = cmd("SET");
    set_cmd.arg(key).arg(locker);
    if !force {
      set_cmd.arg("NX");
    }
    if let Some(ttl) = ttl_ms {
      set_cmd.arg("PX").arg(ttl);
    }
    ops.push(Op::Command(set_cmd));
  }
  values(c.run(ops).await.map(|r| {
    let ints = r.chunks(2).map(|pair| int(&pair[1])).collect();
    (ints, Vec::new())
  }))
}

/// Per key `SREM set key` and `DEL key`. `ints[i]`: 1 if key i existed.
pub async fn unlock(c: Arc<Client>, set: String, keys: Vec<String>) -> Outcome {
  let mut ops = Vec::with_capacity(keys.len() * 2);
  for key in &keys {
    ops.push(Op::Command(cmd("SREM").arg(&set).arg(key).to_owned()));
    ops.push(Op::Command(cmd("DEL").arg(key).to_owned()));
  }
  values(c.run(ops).await.map(|r| {
    let ints = r.chunks(2).map(|pair| int(&pair[1])).collect();
    (ints, Vec::new())
  }))
}

/// Per key `PEXPIRE key ttl`. `ints[i]`: 1 if key i exists.
pub async fn extend(c: Arc<Client>, keys: Vec<String>, ttl_ms: u64) -> Outcome {
  let ops = keys
    .iter()
    .map(|k| Op::Command(cmd("PEXPIRE").arg(k).arg(ttl_ms).to_owned()))
    .collect();
  values(
    c.run(ops)
      .await
      .map(|r| (r.iter().map(int).collect(), Vec::new())),
  )
}

/// Per key `GET key`. `strs[i]`: the locker, or None.
pub async fn get_lockers(c: Arc<Client>, keys: Vec<String>) -> Outcome {
  let ops = keys
    .iter()
    .map(|k| Op::Command(cmd("GET").arg(k).to_owned()))
    .collect();
  values(
    c.run(ops)
      .await
      .map(|r| (Vec::new(), r.iter().map(string).collect())),
  )
}

/// `SMEMBERS set`. `strs`: the held keys.
pub async fn get_locks(c: Arc<Client>, set: String) -> Outcome {
  let ops = vec![Op::Command(cmd("SMEMBERS").arg(&set).to_owned())];
  values(c.run(ops).await.map(|r| (Vec::new(), strings(&r[0]))))
}

/// Reports every key of `keys` that is gone (`PTTL` −2) and that this call removed from
/// the set, as an `expire` signal.
pub async fn expire_locks(c: Arc<Client>, set: String, keys: Vec<String>) -> Outcome {
  match expire_pass(&c, &set, keys).await {
    Ok(()) => Outcome::Done,
    Err(e) => Outcome::Failed(e),
  }
}

async fn expire_pass(c: &Client, set: &str, keys: Vec<String>) -> Result<(), Error> {
  if keys.is_empty() {
    return Ok(());
  }
  let ops = keys
    .iter()
    .map(|k| Op::Command(cmd("PTTL").arg(k).to_owned()))
    .collect();
  let ttls = c.run(ops).await?;
  let gone: Vec<&String> = keys
    .iter()
    .zip(&ttls)
    .filter(|(_, t)| int(t) == -2)
    .map(|(k, _)| k)
    .collect();
  if gone.is_empty() {
    return Ok(());
  }
  let ops = gone
    .iter()
    .map(|k| Op::Command(cmd("SREM").arg(set).arg(*k).to_owned()))
    .collect();
  let removed = c.run(ops).await?;
  for (key, r) in gone.into_iter().zip(&removed) {
    if int(r) == 1 {
      c.signal("expire", key, None);
    }
  }
  Ok(())
}

/// Every `every`, the members of the set are checked for expiry. Errors are reported as
/// `error` signals and the watch goes on.
pub fn watch(c: &Arc<Client>, set: String, every: Duration) {
  let me = Arc::downgrade(c);
  c.start_job("expire", async move {
    loop {
      tokio::time::sleep(every).await;
      let Some(c) = me.upgrade() else { break };
      let members = c
        .run(vec![Op::Command(cmd("SMEMBERS").arg(&set).to_owned())])
        .await
        .map(|r| strings(&r[0]).into_iter().flatten().collect::<Vec<_>>());
      let pass = match members {
        Ok(keys) => expire_pass(&c, &set, keys).await,
        Err(e) => Err(e),
      };
      if let Err(e) = pass {
        c.signal("error", &set, Some(e));
      }
    }
  });
}
