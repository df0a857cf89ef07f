//! What a store tells its manager about its connections, for the manager's `error` and
//! `reconnect` events: a node (or database) failed, or answers again after failing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::core::{Cause, CauseKind};

#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
  /// A node could not be reached or did not answer in time (never credentials).
  Failed(Cause),
  /// The node (`host:port`) answers again after failing.
  Reconnected(String),
}

/// Where a store's events go (set once, by the manager that owns the store).
pub type Reporter = Arc<dyn Fn(StoreEvent) + Send + Sync>;

/// One node's or database's connection state, shared with whatever talks to it.
pub struct Health {
  label: String,
  down: AtomicBool,
  reporter: OnceLock<Reporter>,
}

impl Health {
  pub fn new(label: &str) -> Arc<Health> {
    Arc::new(Health {
      label: label.to_string(),
      down: AtomicBool::new(false),
      reporter: OnceLock::new(),
    })
  }

  pub fn set_reporter(&self, r: Reporter) {
    let _ = self.reporter.set(r);
  }

  /// A call failed for want of the connection.
  pub fn failed(&self, kind: CauseKind, message: &str) {
    self.down.store(true, Ordering::Release);
    if let Some(r) = self.reporter.get() {
      r(StoreEvent::Failed(Cause {
        node: self.label.clone(),
        kind,
        message: message.to_string(),
      }));
    }
  }

  /// A call succeeded: if the last one had failed, the connection is back.
  pub fn ok(&self) {
    if self.down.swap(false, Ordering::AcqRel) {
      if let Some(r) = self.reporter.get() {
        r(StoreEvent::Reconnected(self.label.clone()));
      }
    }
  }
}
