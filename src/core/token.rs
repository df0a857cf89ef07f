//! Lock tokens: the in-memory backend's, and those the remote stores keep.
//!
//! Ownership is checked by a lock's numeric id, which is never reused. The public token
//! (`handle.value`) is a keyed PRF of that id: SipHash-2-4 with a 128-bit key drawn once
//! from the OS CSPRNG. Tokens are therefore unguessable without the key, yet cost nothing
//! on the lock path: they are computed only when a caller reads `value`.

use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

fn key() -> &'static [u8; 16] {
  static KEY: OnceLock<[u8; 16]> = OnceLock::new();
  KEY.get_or_init(|| {
    let mut k = [0u8; 16];
    // Without OS randomness we would hand out guessable tokens; better to stop here.
    getrandom::fill(&mut k).expect("the OS random number generator is unavailable");
    k
  })
}

/// 32 lowercase hex chars, the same shape as node-redlock's values.
pub fn token_hex(id: u64) -> String {
  prf_hex(key(), id)
}

/// SipHash-2-4 of `n` under `key`, 128 bits as 32 lowercase hex chars.
fn prf_hex(key: &[u8; 16], n: u64) -> String {
  let mut h = SipHasher24::new_with_key(key);
  h.write_u64(n);
  format!("{:032x}", h.finish128().as_u128())
}

/// A token for backends whose token is stored remotely, hex-encoded: the same keyed PRF,
/// under a key of its own, of a process-wide counter. Unguessable as 128 bits from the OS
/// would be, unique within the process, and another process draws its own key; but no
/// system call per lock (`getrandom` showed in the Redis profile).
pub fn remote_token_hex() -> std::io::Result<String> {
  static KEY: OnceLock<[u8; 16]> = OnceLock::new();
  static NEXT: AtomicU64 = AtomicU64::new(0);
  let key = match KEY.get() {
    Some(k) => k,
    None => {
      // Drawn until it works (a failure is not kept); of two racing draws, one key is kept.
      let mut k = [0u8; 16];
      getrandom::fill(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
      KEY.get_or_init(|| k)
    }
  };
  Ok(prf_hex(key, NEXT.fetch_add(1, Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn tokens_are_stable_per_id_and_distinct() {
    assert_eq!(token_hex(1), token_hex(1));
    assert_ne!(token_hex(1), token_hex(2));
    assert_eq!(token_hex(7).len(), 32);
    assert_ne!(remote_token_hex().unwrap(), remote_token_hex().unwrap());
  }

  #[test]
  fn remote_tokens_are_distinct_hex() {
    let all: std::collections::HashSet<String> =
      (0..10_000).map(|_| remote_token_hex().unwrap()).collect();
    assert_eq!(all.len(), 10_000);
    assert!(all.iter().all(|t| t.len() == 32
      && t
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))));
    // Not the in-memory tokens of the same numbers: another key.
    assert!(!all.contains(&token_hex(0)));
  }
}
