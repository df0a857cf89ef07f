//! Time. Deadlines and validity are monotonic `Instant`s; JS sees them as epoch
//! milliseconds, converted in this one place.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The wall-clock view of a monotonic instant, in epoch ms, rounded down: a lock is never
/// shown as valid for longer than it is.
pub fn epoch_ms(at: Instant) -> f64 {
  let now = Instant::now();
  let wall = SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
  let delta = if at >= now {
    (at - now).as_secs_f64() * 1000.0
  } else {
    -((now - at).as_secs_f64() * 1000.0)
  };
  (wall + delta).floor()
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::time::Duration;

  #[test]
  fn epoch_ms_tracks_the_wall_clock() {
    let wall = SystemTime::now()
      .duration_since(UNIX_EPOCH)
      .unwrap()
      .as_millis() as f64;
    let later = epoch_ms(Instant::now() + Duration::from_secs(10));
    assert!((later - wall - 10_000.0).abs() < 50.0, "{later} vs {wall}");
  }
}
