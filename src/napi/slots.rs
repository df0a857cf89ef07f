//! A generational registry of managers per JS thread. A slot is reused once its manager
//! is destroyed, and the handle JS keeps carries the slot's generation, so a stale handle
//! never reaches a newer manager. Handles are safe integers: generation × 2^24 + index.

const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Generations wrap below 2^29, keeping handles under 2^53.
const GEN_MASK: u32 = (1 << 29) - 1;

struct Entry<T> {
  generation: u32,
  value: Option<T>,
}

pub struct Slots<T> {
  entries: Vec<Entry<T>>,
  free: Vec<u32>,
}

impl<T> Default for Slots<T> {
  fn default() -> Self {
    Slots {
      entries: Vec::new(),
      free: Vec::new(),
    }
  }
}

impl<T> Slots<T> {
  /// Stores `value`; `None` when 2^24 managers are alive at once.
  pub fn insert(&mut self, value: T) -> Option<f64> {
    let index = match self.free.pop() {
      Some(i) => i,
      None if (self.entries.len() as u64) < INDEX_MASK => {
        self.entries.push(Entry {
          generation: 0,
          value: None,
        });
        (self.entries.len() - 1) as u32
      }
      None => return None,
    };
    let e = &mut self.entries[index as usize];
    e.generation = (e.generation + 1) & GEN_MASK;
    e.value = Some(value);
    Some(((e.generation as u64) << INDEX_BITS | index as u64) as f64)
  }

  fn entry(&self, handle: f64) -> Option<(usize, u32)> {
    if !(0.0..9.007_199_254_740_992e15).contains(&handle) {
      return None;
    }
    let h = handle as u64;
    Some(((h & INDEX_MASK) as usize, (h >> INDEX_BITS) as u32))
  }

  pub fn get(&self, handle: f64) -> Option<&T> {
    let (index, generation) = self.entry(handle)?;
    let e = self.entries.get(index)?;
    (e.generation == generation).then_some(e.value.as_ref()?)
  }

  pub fn remove(&mut self, handle: f64) -> Option<T> {
    let (index, generation) = self.entry(handle)?;
    let e = self.entries.get_mut(index)?;
    if e.generation != generation {
      return None;
    }
    let v = e.value.take()?;
    self.free.push(index as u32);
    Some(v)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn slots_are_reused_and_stale_handles_miss() {
    let mut s = Slots::default();
    let a = s.insert("a").unwrap();
    assert_eq!(s.get(a), Some(&"a"));
    assert_eq!(s.remove(a), Some("a"));
    let b = s.insert("b").unwrap();
    assert_ne!(a, b);
    assert_eq!(s.get(a), None);
    assert_eq!(s.remove(a), None);
    assert_eq!(s.get(b), Some(&"b"));
    assert_eq!(s.entries.len(), 1);
    assert_eq!(s.get(-1.0), None);
    assert_eq!(s.get(f64::NAN), None);
  }
}
