//! Lock keys are bytes: the WTF-8 encoding of the JS string (UTF-8 that also encodes lone
//! surrogates). The encoding is injective, so distinct JS strings are distinct keys in every
//! backend, and for every well-formed string it is plain UTF-8: the bytes node-redlock
//! writes to Redis.

/// Appends the WTF-8 encoding of `units` (a JS string's UTF-16 code units) to `out`.
pub fn wtf8_from_utf16(units: &[u16], out: &mut Vec<u8>) {
  let mut i = 0;
  while i < units.len() {
    let u = units[i] as u32;
    let cp = if (0xD800..0xDC00).contains(&u)
      && i + 1 < units.len()
      && (0xDC00..0xE000).contains(&(units[i + 1] as u32))
    {
      i += 1;
      0x10000 + ((u - 0xD800) << 10) + (units[i] as u32 - 0xDC00)
    } else {
      u // a lone surrogate is encoded like any other code point below 0x10000
    };
    i += 1;
    match cp {
      0..=0x7F => out.push(cp as u8),
      0x80..=0x7FF => out.extend([0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
      0x800..=0xFFFF => out.extend([
        0xE0 | (cp >> 12) as u8,
        0x80 | ((cp >> 6) & 0x3F) as u8,
        0x80 | (cp & 0x3F) as u8,
      ]),
      _ => out.extend([
        0xF0 | (cp >> 18) as u8,
        0x80 | ((cp >> 12) & 0x3F) as u8,
        0x80 | ((cp >> 6) & 0x3F) as u8,
        0x80 | (cp & 0x3F) as u8,
      ]),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn enc(s: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    wtf8_from_utf16(s, &mut v);
    v
  }

  #[test]
  fn well_formed_strings_are_utf8() {
    for s in ["", "k", "héllo", "日本語", "emoji 😀 ok"] {
      let units: Vec<u16> = s.encode_utf16().collect();
      assert_eq!(enc(&units), s.as_bytes());
    }
  }

  #[test]
  fn lone_surrogates_stay_distinct() {
    assert_ne!(enc(&[0xD800]), enc(&[0xDBFF]));
    assert_ne!(enc(&[0xD800]), enc(&[0xFFFD]));
    assert_ne!(enc(&[0xD800, 0x41]), enc(&[0xDC00, 0x41]));
  }
}
