//! Where one RESP reply ends in a buffer of bytes read so far, without parsing it: the
//! connection on the JS thread (`js_conn`) hands each whole reply to redis-rs's parser.

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

fn number(line: &[u8]) -> Result<i64, ()> {
  std::str::from_utf8(line)
    .ok()
    .and_then(|s| s.parse().ok())
    .ok_or(())
}

#[cfg(test)]
mod tests {
  use super::frame_len;

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
