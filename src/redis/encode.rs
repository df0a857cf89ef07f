//! The lock's own commands written as RESP straight into a batch's bytes, for a connection
//! the JS thread drives (`JsConn`). Through redis-rs, a request built a `Cmd` with its
//! argument vectors, the script's key and argument lists (side keys and numbers as owned
//! strings), and a packed copy of it all: about a dozen allocations per acquisition. Here
//! the bytes are written once into one buffer per batch. Other operations (the drop-in
//! faces' commands, multi-resource scripts) go through redis-rs's packing, unchanged; a
//! test checks that both give the same bytes for every operation written here.

use super::ops::Op;
use super::scripts::{self, side_key_wraps, FENCE_SUFFIX, WAITING_SUFFIX};

/// The scripts that take a key (acquire, handoff) whose source one socket has carried: the
/// server keeps a script from its first `EVAL` until a restart (which closes the socket) or
/// a `SCRIPT FLUSH`, so on that socket they go by `EVALSHA` after that: the server then
/// neither hashes the source again nor reads it off the wire (7.5 against 5.3 µs of server
/// time per acquisition here). A `NOSCRIPT` fails the attempt instead of loading and
/// retrying it (`node::send_batch`): a retry could land after the attempt's take-back.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Known(u8);

impl Known {
  const ACQUIRE: u8 = 1;
  const TRANSFER: u8 = 2;
  const TRANSFER_PLAIN: u8 = 4;

  /// Whether `bit`'s source was sent; it is from now on.
  fn sent(&mut self, bit: u8) -> bool {
    let was = self.0 & bit != 0;
    self.0 |= bit;
    was
  }
}

/// Appends `op` to `out` as one RESP command, by `EVALSHA` where `known` allows.
pub fn encode(op: &Op, out: &mut Vec<u8>, known: &mut Known) {
  if !encode_own(op, out, known) {
    let mut pipe = redis::pipe();
    op.write(&mut pipe);
    out.extend_from_slice(&pipe.get_packed_pipeline());
  }
}

/// Writes the operations of the lock's hot path; false for any other.
fn encode_own(op: &Op, out: &mut Vec<u8>, known: &mut Known) -> bool {
  let mut w = Resp(out);
  match op {
    Op::Acquire {
      keys,
      token,
      ttl_ms,
      fence,
    } => {
      let Some(key) = keys.single() else {
        return false;
      };
      if *fence {
        w.array(10);
        w.script(
          known.sent(Known::ACQUIRE),
          &scripts::ACQUIRE,
          &scripts::ACQUIRE_SOURCE,
        );
        w.num(3);
        w.bulk(key);
        w.side(key, FENCE_SUFFIX);
        w.side(key, WAITING_SUFFIX);
        w.bulk(token.as_bytes());
        w.num(*ttl_ms);
        w.num(ttl_ms + scripts::FENCE_KEEP_MS);
        w.num(scripts::WAITING_MS);
      } else {
        w.array(6);
        w.bulk(b"SET");
        w.bulk(key);
        w.bulk(token.as_bytes());
        w.bulk(b"NX");
        w.bulk(b"PX");
        w.num(*ttl_ms);
      }
    }
    Op::MarkWaiting { key } => {
      w.array(5);
      w.bulk(b"SET");
      w.side(key, WAITING_SUFFIX);
      w.bulk(b"1");
      w.bulk(b"PX");
      w.num(scripts::WAITING_MS);
    }
    Op::Release {
      keys,
      token,
      notify,
      ..
    } => {
      let Some(key) = keys.single() else {
        return false;
      };
      w.array(5);
      if *notify {
        w.bulk(b"EVALSHA");
        w.bulk(scripts::RELEASE_NOTIFY.get_hash().as_bytes());
      } else {
        w.bulk(b"EVAL");
        w.bulk(scripts::RELEASE_SOURCE.as_bytes());
      }
      w.num(1);
      w.bulk(key);
      w.bulk(token.as_bytes());
    }
    Op::Extend {
      keys,
      token,
      ttl_ms,
    } => {
      let Some(key) = keys.single() else {
        return false;
      };
      w.array(6);
      w.bulk(b"EVALSHA");
      w.bulk(scripts::EXTEND.get_hash().as_bytes());
      w.num(1);
      w.bulk(key);
      w.bulk(token.as_bytes());
      w.num(*ttl_ms);
    }
    Op::Transfer {
      key,
      from,
      to,
      ttl_ms,
      handoffs,
      fence,
    } => {
      w.array(12);
      if *fence {
        w.script(
          known.sent(Known::TRANSFER),
          &scripts::TRANSFER,
          &scripts::TRANSFER_SOURCE,
        );
      } else {
        let sent = known.sent(Known::TRANSFER_PLAIN);
        w.script(
          sent,
          &scripts::TRANSFER_PLAIN,
          &scripts::TRANSFER_PLAIN_SOURCE,
        );
      }
      w.num(3);
      w.bulk(key);
      w.side(key, FENCE_SUFFIX);
      w.side(key, WAITING_SUFFIX);
      w.bulk(to.as_bytes());
      w.num(*ttl_ms);
      w.num(ttl_ms + scripts::FENCE_KEEP_MS);
      w.bulk(from.as_bytes());
      w.num(u64::from(*handoffs));
      w.num(u64::from(crate::remote::FAIR_HANDOFFS));
    }
    Op::Inspect { key } => {
      w.array(2);
      w.bulk(b"EXISTS");
      w.bulk(key);
    }
    _ => return false,
  }
  true
}

/// RESP's request form: an array of bulk strings.
struct Resp<'a>(&'a mut Vec<u8>);

impl Resp<'_> {
  fn header(&mut self, tag: u8, n: usize) {
    self.0.push(tag);
    self
      .0
      .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    self.0.extend_from_slice(b"\r\n");
  }

  fn array(&mut self, n: usize) {
    self.header(b'*', n);
  }

  fn bulk(&mut self, bytes: &[u8]) {
    self.header(b'$', bytes.len());
    self.0.extend_from_slice(bytes);
    self.0.extend_from_slice(b"\r\n");
  }

  /// `EVALSHA` and the hash once the server has the script (`known`), else `EVAL` and it.
  fn script(&mut self, known: bool, script: &redis::Script, source: &str) {
    if known {
      self.bulk(b"EVALSHA");
      self.bulk(script.get_hash().as_bytes());
    } else {
      self.bulk(b"EVAL");
      self.bulk(source.as_bytes());
    }
  }

  fn num(&mut self, n: u64) {
    self.bulk(itoa::Buffer::new().format(n).as_bytes());
  }

  /// `key`'s side key (`scripts::fence_key`, `waiting_key`), written in place.
  fn side(&mut self, key: &[u8], suffix: &[u8]) {
    let wraps = side_key_wraps(key);
    self.header(b'$', key.len() + suffix.len() + if wraps { 2 } else { 0 });
    scripts::write_side_key(self.0, key, suffix, wraps);
    self.0.extend_from_slice(b"\r\n");
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::remote::Resources;
  use std::sync::Arc;

  #[test]
  fn the_own_encoding_is_redis_rs_packing_byte_for_byte() {
    let keys: [&[u8]; 4] = [b"k", b"{tag}:job", b"odd}key", "ключ\r\n".as_bytes()];
    for k in keys {
      let key: Arc<[u8]> = k.into();
      let one = || Resources::one(key.clone());
      let token = "0123456789abcdef0123456789abcdef".to_string();
      let mut ops = vec![
        Op::MarkWaiting { key: key.clone() },
        Op::Inspect { key: key.clone() },
        Op::Extend {
          keys: one(),
          token: token.clone(),
          ttl_ms: 250,
        },
      ];
      for fence in [true, false] {
        ops.push(Op::Acquire {
          keys: one(),
          token: token.clone(),
          ttl_ms: 10_000,
          fence,
        });
        ops.push(Op::Transfer {
          key: key.clone(),
          from: token.clone(),
          to: "ffff".into(),
          ttl_ms: 30,
          handoffs: 7,
          fence,
        });
        ops.push(Op::Release {
          keys: one(),
          token: token.clone(),
          retry_until: None,
          notify: fence,
        });
      }
      for op in &ops {
        let mut own = Vec::new();
        let mut known = Known::default();
        assert!(
          encode_own(op, &mut own, &mut known),
          "{op:?} is not written here"
        );
        let mut pipe = redis::pipe();
        op.write(&mut pipe);
        assert_eq!(
          String::from_utf8_lossy(&own),
          String::from_utf8_lossy(&pipe.get_packed_pipeline()),
          "{op:?}"
        );
        // Once the source went, the same command by EVALSHA and the script's hash.
        let mut again = Vec::new();
        encode_own(op, &mut again, &mut known);
        if let Some((script, ..)) = op.script().filter(|_| op.takes_key()) {
          let source = String::from_utf8_lossy(&own).into_owned();
          let src = script_source(op);
          let by_hash = source.replacen(
            &format!("$4\r\nEVAL\r\n${}\r\n{src}\r\n", src.len()),
            &format!("$7\r\nEVALSHA\r\n$40\r\n{}\r\n", script.get_hash()),
            1,
          );
          assert_ne!(by_hash, source, "{op:?}");
          assert_eq!(String::from_utf8_lossy(&again), by_hash, "{op:?}");
        } else {
          assert_eq!(again, own, "{op:?}");
        }
      }
    }
  }

  fn script_source(op: &Op) -> &'static str {
    match op {
      Op::Acquire { .. } => &scripts::ACQUIRE_SOURCE,
      Op::Transfer { fence: true, .. } => &scripts::TRANSFER_SOURCE,
      _ => &scripts::TRANSFER_PLAIN_SOURCE,
    }
  }
}
