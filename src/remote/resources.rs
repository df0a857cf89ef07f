//! The keys one lock holds: one, or several taken together (a multi-resource lock, all or
//! nothing). Several keys are kept sorted (by their bytes) and without repeats: two requests
//! for the same keys in different orders then enter the local queues in the same order, and
//! a store sees the same set however the caller listed it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Attempt, KeyWatch, Store};
use crate::core::{Cause, Key};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources(Arc<[Key]>);

impl Resources {
  pub fn one(key: Key) -> Self {
    Resources(Arc::from([key]))
  }

  /// `keys` in the canonical order, repeats dropped. At least one key.
  pub fn many(mut keys: Vec<Key>) -> Self {
    debug_assert!(!keys.is_empty());
    keys.sort_unstable();
    keys.dedup();
    Resources(keys.into())
  }

  pub fn keys(&self) -> &[Key] {
    &self.0
  }

  /// The key, when there is exactly one.
  pub fn single(&self) -> Option<&Key> {
    match &*self.0 {
      [key] => Some(key),
      _ => None,
    }
  }

  /// The first key in the canonical order (what a question about "the" key asks).
  pub fn first(&self) -> &Key {
    &self.0[0]
  }

  pub fn contains(&self, key: &[u8]) -> bool {
    self.0.iter().any(|k| &**k == key)
  }
}

// The store's calls for one or several keys: a single key takes the one-key calls that
// every store has; several the `_all` calls (only asked of a store with `Store::MULTI`).

pub async fn acquire<S: Store>(s: &S, r: &Resources, token: &str, ttl: Duration) -> Attempt {
  match r.single() {
    Some(key) => s.try_acquire(key, token, ttl).await,
    None => s.try_acquire_all(r.keys(), token, ttl).await,
  }
}

pub async fn extend<S: Store>(s: &S, r: &Resources, token: &str, ttl: Duration) -> Attempt {
  match r.single() {
    Some(key) => s.try_extend(key, token, ttl).await,
    None => s.try_extend_all(r.keys(), token, ttl).await,
  }
}

pub async fn release<S: Store>(s: &S, r: &Resources, token: &str, until: Instant) {
  match r.single() {
    Some(key) => s.release(key, token, until).await,
    None => s.release_all(r.keys(), token, until).await,
  }
}

pub fn watch<S: Store>(s: &S, r: &Resources) -> Option<KeyWatch> {
  match r.single() {
    Some(key) => s.watch(key),
    None => s.watch_all(r.keys()),
  }
}

/// Whether any of the keys is held (one look tells busy from unreachable).
pub async fn inspect<S: Store>(s: &S, r: &Resources) -> Result<bool, Vec<Cause>> {
  s.inspect(r.first()).await
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn several_keys_are_sorted_and_unique() {
    let k = |s: &str| -> Key { s.as_bytes().into() };
    let r = Resources::many(vec![k("b"), k("a"), k("b")]);
    assert_eq!(r.keys(), &[k("a"), k("b")]);
    assert!(r.single().is_none());
    assert_eq!(
      Resources::many(vec![k("x"), k("x")]).single(),
      Some(&k("x"))
    );
  }
}
