//! Where one RESP reply ends in a buffer of bytes read so far, without parsing it, and the
//! replies oxlock's requests get, parsed (`parse`): the connection on the JS thread
//! (`js_conn`) hands anything else (errors, RESP3 types) to redis-rs's parser.

use redis::Value;

/// The length of the first whole RESP value of `buf`: None while it is incomplete, Err
/// when `buf` is not RESP.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ()> {
  let (mut at, mut need) = (0usize, 1usize);
  while need > 0 {
    let Some(&kind) = buf.get(at) else {
      return Ok(None);
    };
    let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
      return Ok(None);
    };
    let line = &buf[at + 1..at + eol];
    let next = at + eol + 2;
    need -= 1;
    match kind {
      b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => at = next,
      b'$' | b'!' | b'=' => {
        let n = number(line)?;
        // Saturating: a hostile length only means "incomplete".
        at = if n < 0 {
          next
        } else {
          next.saturating_add(n as usize).saturating_add(2)
        };
      }
      b'*' | b'~' | b'>' | b'%' => {
        let n = number(line)?;
        need = need.saturating_add(if n < 0 {
          0
        } else if kind == b'%' {
          (n as usize).saturating_mul(2)
        } else {
          n as usize
        });
        at = next;
      }
      _ => return Err(()),
    }
  }
  Ok((at <= buf.len()).then_some(at))
}

/// One whole reply (`frame_len` long) as redis-rs's parser reads it, for the types replies
/// to oxlock's commands have: simple strings, integers, bulk strings, arrays of them and
/// nils. None for anything else (an error, a RESP3 type, bytes that are not RESP): those
/// go to redis-rs. (Its parser costs more than the rest of a reply's handling.)
pub fn parse(frame: &[u8]) -> Option<Value> {
  let (value, at) = value(frame, 0, 0)?;
  (at == frame.len()).then_some(value)
}

/// Arrays nested deeper than this go to redis-rs (ours are one level deep).
const MAX_DEPTH: usize = 4;

fn value(buf: &[u8], at: usize, depth: usize) -> Option<(Value, usize)> {
  let kind = *buf.get(at)?;
  let eol = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
  // (None for a line with no type byte: `\r\n` at `at` itself.)
  let line = buf.get(at + 1..eol)?;
  let next = eol + 2;
  match kind {
    b'+' => {
      let line = std::str::from_utf8(line).ok()?;
      let v = if line == "OK" {
        Value::Okay
      } else {
        Value::SimpleString(line.into())
      };
      Some((v, next))
    }
    b':' => Some((Value::Int(integer(line)?), next)),
    b'$' => {
      let n = integer(line)?;
      if n < 0 {
        return Some((Value::Nil, next));
      }
      let end = next.checked_add(n as usize)?;
      if buf.get(end..end.checked_add(2)?)? != b"\r\n" {
        return None;
      }
      Some((Value::BulkString(buf[next..end].to_vec()), end + 2))
    }
    b'*' if depth < MAX_DEPTH => {
      let n = integer(line)?;
      if n < 0 {
        return Some((Value::Nil, next));
      }
      // (No capacity from the length: it is the peer's word, the elements are not.)
      let mut items = Vec::new();
      let mut at = next;
      for _ in 0..n {
        let (v, after) = value(buf, at, depth + 1)?;
        items.push(v);
        at = after;
      }
      Some((Value::Array(items), at))
    }
    _ => None,
  }
}

/// An integer line as redis-rs reads one (surrounding spaces allowed).
fn integer(line: &[u8]) -> Option<i64> {
  std::str::from_utf8(line).ok()?.trim().parse().ok()
}

fn number(line: &[u8]) -> Result<i64, ()> {
  std::str::from_utf8(line)
    .ok()
    .and_then(|s| s.parse().ok())
    .ok_or(())
}

#[cfg(test)]
mod tests {
  use super::{frame_len, parse};

  #[test]
  fn parses_as_redis_rs_does() {
    let same: &[&[u8]] = &[
      b"+OK\r\n",
      b"+QUEUED\r\n",
      b"+\r\n",
      b":0\r\n",
      b":-42\r\n",
      b": 7 \r\n",
      b"$3\r\nabc\r\n",
      b"$0\r\n\r\n",
      b"$4\r\na\r\nb\r\n",
      b"$-1\r\n",
      b"*0\r\n",
      b"*-1\r\n",
      b"*3\r\n:1\r\n$-1\r\n$2\r\nxy\r\n",
      b"*2\r\n*2\r\n:1\r\n:2\r\n+OK\r\n",
    ];
    for frame in same {
      let ours = parse(frame);
      assert!(ours.is_some(), "{:?}", String::from_utf8_lossy(frame));
      assert_eq!(
        ours.ok_or(()),
        redis::parse_redis_value(frame).map_err(|_| ())
      );
    }
    // Left to redis-rs: errors, RESP3 types, deep nesting, what is not a whole reply.
    let left: &[&[u8]] = &[
      b"-ERR no\r\n",
      b"*1\r\n-NOSCRIPT x\r\n",
      b"%1\r\n:1\r\n:2\r\n",
      b"#t\r\n",
      b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
      b"$3\r\nabcd\r\n",
      b":x\r\n",
      b"+OK\r\n+OK\r\n",
      b"*2\r\n:1\r\n",
      b"$9223372036854775807\r\nab",
      b"\r\n",
      b"*1\r\n\r\n",
    ];
    for frame in left {
      assert_eq!(parse(frame), None, "{:?}", String::from_utf8_lossy(frame));
    }
  }

  #[test]
  fn frames() {
    assert_eq!(frame_len(b"+OK\r\n"), Ok(Some(5)));
    assert_eq!(frame_len(b"+OK\r"), Ok(None));
    assert_eq!(frame_len(b":12\r\n:1"), Ok(Some(5)));
    assert_eq!(frame_len(b"$3\r\nabc\r\n"), Ok(Some(9)));
    assert_eq!(frame_len(b"$3\r\nab"), Ok(None));
    assert_eq!(frame_len(b"$-1\r\n"), Ok(Some(5)));
    assert_eq!(frame_len(b"*2\r\n:1\r\n$1\r\nx\r\n+"), Ok(Some(15)));
    assert_eq!(frame_len(b"*2\r\n:1\r\n"), Ok(None));
    assert_eq!(frame_len(b"*-1\r\n"), Ok(Some(5)));
    assert_eq!(frame_len(b"*0\r\n"), Ok(Some(4)));
    assert_eq!(frame_len(b"-ERR x\r\n"), Ok(Some(8)));
    assert_eq!(frame_len(b"?\r\n"), Err(()));
    // Lengths no server sends are incomplete, never an overflow.
    assert_eq!(frame_len(b"$9223372036854775807\r\nab"), Ok(None));
    assert_eq!(frame_len(b"%9223372036854775807\r\n:1\r\n"), Ok(None));
  }
}
