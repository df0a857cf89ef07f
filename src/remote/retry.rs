//! The retry policy shared by every remote store: `count` retries after the first
//! attempt, `delay ± jitter` apart.

use std::time::Duration;

use crate::config::RetryPolicy;

impl RetryPolicy {
  /// Whether another attempt may follow `attempts` made so far.
  pub fn more_after(&self, attempts: u32) -> bool {
    self.count < 0 || (attempts as i64) <= self.count
  }

  /// The pause before the next attempt, drawn uniformly from `delay ± jitter`.
  pub fn pause(&self) -> Duration {
    let mut b = [0u8; 4];
    let unit = if getrandom::fill(&mut b).is_ok() {
      u32::from_le_bytes(b) as f64 / u32::MAX as f64
    } else {
      0.5
    };
    let ms = self.delay_ms + (2.0 * unit - 1.0) * self.jitter_ms;
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
  }

  /// How long a caller may wait in the local queue: the time its own retries would take.
  pub fn local_wait(&self) -> Option<Duration> {
    (self.count >= 0).then(|| Duration::from_secs_f64(self.count as f64 * self.delay_ms / 1000.0))
  }

  /// Attempts reported when the whole budget was used.
  pub fn all_attempts(&self) -> u32 {
    (self.count + 1).clamp(1, u32::MAX as i64) as u32
  }
}
