//! Lock tokens for the in-memory backend.
//!
//! Ownership is checked by a lock's numeric id, which is never reused. The public token
//! (`handle.value`) is a keyed PRF of that id: SipHash-2-4 with a 128-bit key drawn once
//! from the OS CSPRNG. Tokens are therefore unguessable without the key, yet cost nothing
//! on the lock path: they are computed only when a caller reads `value`.

use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;
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
  let mut h = SipHasher24::new_with_key(key());
  h.write_u64(id);
  format!("{:032x}", h.finish128().as_u128())
}

/// 128 fresh bits from the OS CSPRNG, hex-encoded (for backends whose token is stored remotely).
pub fn random_token_hex() -> std::io::Result<String> {
  let mut b = [0u8; 16];
  getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
  Ok(format!("{:032x}", u128::from_be_bytes(b)))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn tokens_are_stable_per_id_and_distinct() {
    assert_eq!(token_hex(1), token_hex(1));
    assert_ne!(token_hex(1), token_hex(2));
    assert_eq!(token_hex(7).len(), 32);
    assert_ne!(random_token_hex().unwrap(), random_token_hex().unwrap());
  }
}
