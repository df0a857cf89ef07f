//! Requests that settle exactly once: a future run by a `Spawner` whose outcome is handed
//! to `done` when it finishes, when it panics (caught, as `E_INTERNAL`), or when its
//! executor drops it unfinished (also `E_INTERNAL`). A JS promise waiting on it never hangs.

use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use super::exec::{Spawner, Task};
use super::{Error, Outcome};

/// Spawns `fut`; `done` runs once with its outcome, whatever happens to it.
pub fn spawn_settled<F, D>(spawner: &Spawner, fut: F, done: D) -> Task
where
  F: Future<Output = Outcome> + Send + 'static,
  D: FnOnce(Outcome) + Send + 'static,
{
  let mut guard = Settle(Some(done));
  spawner.spawn(async move {
    let outcome = AssertUnwindSafe(fut)
      .catch_unwind()
      .await
      .unwrap_or_else(|p| Outcome::Failed(Error::internal(panic_text(&*p))));
    guard.settle(outcome);
  })
}

struct Settle<D: FnOnce(Outcome)>(Option<D>);

impl<D: FnOnce(Outcome)> Settle<D> {
  fn settle(&mut self, outcome: Outcome) {
    if let Some(done) = self.0.take() {
      done(outcome);
    }
  }
}

impl<D: FnOnce(Outcome)> Drop for Settle<D> {
  fn drop(&mut self) {
    self.settle(Outcome::Failed(Error::internal(
      "the request was dropped before it finished",
    )));
  }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
  let what = p
    .downcast_ref::<&str>()
    .map(|s| s.to_string())
    .or_else(|| p.downcast_ref::<String>().cloned())
    .unwrap_or_else(|| "unknown panic".into());
  format!("a request failed inside oxlock ({what})")
}
