//! The lock's own commands written as RESP straight into a batch's bytes, for a connection
//! the JS thread drives (`JsConn`). Through redis-rs, a request built a `Cmd` with its
//! argument vectors, the script's key and argument lists (side keys and numbers as owned
//! strings), and a packed copy of it all: about a dozen allocations per acquisition. Here
//! the bytes are written once into one buffer per batch. Other operations (the drop-in
//! faces' commands, multi-resource scripts) go through redis-rs's packing, unchanged; a
//! test checks that both give the same bytes for every operation written here.

use super::ops::Op;
use super::scripts::{self, side_key_wraps, FENCE_SUFFIX, WAITING_SUFFIX};

/// Appends `op` to `out` as one RESP command.
pub fn encode(op: &Op, out: &mut Vec<u8>) {
  if !encode_own(op, out) {
    let mut pipe = redis::pipe();
    op.write(&mut pipe);
    out.extend_from_slice(&pipe.get_packed_pipeline());
  }
}

/// Writes the operations of the lock's hot path; false for any other.
fn encode_own(op: &Op, out: &mut Vec<u8>) -> bool {
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
        w.bulk(b"EVAL");
        w.bulk(scripts::ACQUIRE_SOURCE.as_bytes());
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
      w.bulk(b"EVAL");
      let source: &str = if *fence {
        &scripts::TRANSFER_SOURCE
      } else {
        &scripts::TRANSFER_PLAIN_SOURCE
      };
      w.bulk(source.as_bytes());
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
        assert!(encode_own(op, &mut own), "{op:?} is not written here");
        let mut pipe = redis::pipe();
        op.write(&mut pipe);
        assert_eq!(
          String::from_utf8_lossy(&own),
          String::from_utf8_lossy(&pipe.get_packed_pipeline()),
          "{op:?}"
        );
      }
    }
  }
}
