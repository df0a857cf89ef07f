//! One MongoDB deployment through the official driver (`mongodb` crate, on the I/O
//! runtime): every operation bounded in time, every failure a `Cause` that names the
//! hosts and never shows a password, and the server's clock, read from `hello`.
//!
//! The server's clock: a lock's `obtained_at` is written by the server (`$currentDate`),
//! so "expired" must be decided on the server's clock too. MongoDB has `$$NOW` for that,
//! but not every server that speaks the protocol evaluates it in a query (the test server
//! errors on it in a projection, 17276, and never matches it inside `$expr`). So the clock
//! is read instead: `hello` answers with the server's `localTime`, which was taken at some
//! moment between our send and our receipt. `localTime + (t - receipt)` is therefore never
//! later than the server's clock at our moment `t` (less an allowance for the two clocks
//! drifting apart, 500 ppm, and a millisecond of rounding), and a lock judged expired by it
//! has expired on the server's clock. Measured on connect, refreshed in the background and
//! before any use of a reading older than `CLOCK_MAX_AGE`.

use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::{ErrorKind as DriverKind, WriteFailure};
use mongodb::{Client, Collection, Database};
use parking_lot::Mutex;
use std::time::{Duration, Instant};

use crate::config::{scrub, MongoTarget};
use crate::core::{Cause, CauseKind, Error};

/// A reading of the server's clock older than this is taken again before it is used.
pub const CLOCK_MAX_AGE: Duration = Duration::from_secs(30);
/// How often the background job reads the clock again.
pub const CLOCK_REFRESH: Duration = Duration::from_secs(10);
/// A reading whose round trip took longer than this (a new connection's handshake, a
/// busy server) is taken once more: the answer is loose by the round trip.
const LOOSE_RTT: Duration = Duration::from_millis(50);

/// The MongoDB "duplicate key" error.
pub const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, Clone, Copy)]
struct Reading {
  /// The server's `localTime`, epoch ms.
  server_ms: i64,
  /// When its answer was in.
  received: Instant,
}

pub struct Mongo {
  /// (Each holds the driver's client: the last one dropped ends its sessions and pool.)
  pub db: Database,
  pub collection: Collection<Document>,
  pub label: String,
  pub op_timeout: Duration,
  secrets: Vec<String>,
  clock: Mutex<Option<Reading>>,
}

impl Mongo {
  /// Connections open on first use (the driver's pool, with its monitors).
  pub fn new(t: &MongoTarget) -> Result<Mongo, Error> {
    // The driver starts its monitoring tasks on the runtime it is created in.
    let _enter = crate::core::runtime::runtime().enter();
    let client = Client::with_options(t.options.clone()).map_err(|e| {
      Error::new(
        crate::core::ErrorKind::Config,
        scrub(
          format!("cannot set up the MongoDB client: {}", e.kind),
          &t.secrets,
        ),
      )
    })?;
    let db = client.database(&t.database);
    let collection = db.collection::<Document>(&t.collection);
    Ok(Mongo {
      db,
      collection,
      label: t.label.clone(),
      op_timeout: t.op_timeout,
      secrets: t.secrets.clone(),
      clock: Mutex::new(None),
    })
  }

  /// Runs one driver operation within the operation bound; the driver's own answer,
  /// error or not, if it came in time.
  pub async fn within<T>(
    &self,
    what: &str,
    op: impl std::future::IntoFuture<Output = mongodb::error::Result<T>>,
  ) -> Result<mongodb::error::Result<T>, Cause> {
    tokio::time::timeout(self.op_timeout, op.into_future())
      .await
      .map_err(|_| {
        self.fail(
          CauseKind::Timeout,
          format!(
            "no answer within {} ms ({what})",
            self.op_timeout.as_millis()
          ),
        )
      })
  }

  /// Runs one driver operation within the operation bound; any failure is a `Cause`.
  pub async fn bounded<T>(
    &self,
    what: &str,
    op: impl std::future::IntoFuture<Output = mongodb::error::Result<T>>,
  ) -> Result<T, Cause> {
    self.within(what, op).await?.map_err(|e| self.cause(&e))
  }

  /// How old the last reading of the server's clock is (None: never read).
  pub fn clock_age(&self) -> Option<Duration> {
    self.clock.lock().map(|r| r.received.elapsed())
  }

  /// Reads the server's clock (`hello`), once more if the round trip was slow.
  pub async fn read_clock(&self) -> Result<(), Cause> {
    for attempt in 0..2 {
      let sent = Instant::now();
      let reply = self
        .bounded("hello", self.db.run_command(doc! { "hello": 1 }))
        .await?;
      let received = Instant::now();
      let server_ms = match reply.get("localTime") {
        Some(mongodb::bson::Bson::DateTime(d)) => d.timestamp_millis(),
        _ => return Err(
          self.fail(
            CauseKind::Server,
            "the server's hello reply has no localTime (its clock is needed to tell expired locks)"
              .into(),
          ),
        ),
      };
      *self.clock.lock() = Some(Reading {
        server_ms,
        received,
      });
      if attempt == 0 && received - sent > LOOSE_RTT {
        continue;
      }
      break;
    }
    Ok(())
  }

  /// A moment no later than the server's clock now (see the module's comment).
  pub async fn server_now(&self) -> Result<DateTime, Cause> {
    let fresh = || {
      let r = *self.clock.lock();
      r.filter(|r| r.received.elapsed() < CLOCK_MAX_AGE)
    };
    let reading = match fresh() {
      Some(r) => r,
      None => {
        self.read_clock().await?;
        (*self.clock.lock()).expect("a reading was just stored")
      }
    };
    let elapsed = reading.received.elapsed().as_millis() as i64;
    let drift = elapsed / 2000 + 1;
    Ok(DateTime::from_millis(reading.server_ms + elapsed - drift))
  }

  pub fn fail(&self, kind: CauseKind, message: String) -> Cause {
    Cause {
      node: self.label.clone(),
      kind,
      message: scrub(message, &self.secrets),
    }
  }

  pub fn cause(&self, e: &mongodb::error::Error) -> Cause {
    let (kind, message) = describe(e);
    self.fail(kind, message)
  }
}

/// The server's error code, if the failure is the server's answer.
pub fn server_code(e: &mongodb::error::Error) -> Option<i32> {
  match &*e.kind {
    DriverKind::Command(c) => Some(c.code),
    DriverKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
    _ => None,
  }
}

/// What went wrong, in the driver's and the server's words (neither carries the password;
/// `Mongo::fail` scrubs it anyway).
pub fn describe(e: &mongodb::error::Error) -> (CauseKind, String) {
  match &*e.kind {
    DriverKind::Command(c) => {
      let kind = match c.code {
        // Unauthorized, AuthenticationFailed
        13 | 18 => CauseKind::Auth,
        // InterruptedAtShutdown, ShutdownInProgress, PrimarySteppedDown, NotWritablePrimary,
        // NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary, InterruptedDueToReplStateChange
        11600 | 91 | 189 | 10107 | 13435 | 13436 | 11602 => CauseKind::Closed,
        _ => CauseKind::Server,
      };
      (kind, format!("{} ({})", c.message, c.code))
    }
    DriverKind::Write(WriteFailure::WriteError(w)) => {
      (CauseKind::Server, format!("{} ({})", w.message, w.code))
    }
    DriverKind::Write(WriteFailure::WriteConcernError(w)) => {
      (CauseKind::Server, format!("{} ({})", w.message, w.code))
    }
    DriverKind::Authentication { message, .. } => (CauseKind::Auth, message.clone()),
    DriverKind::InvalidTlsConfig { message, .. } => (CauseKind::Tls, message.clone()),
    DriverKind::DnsResolve { message, .. } => (CauseKind::Dns, message.clone()),
    DriverKind::ConnectionPoolCleared { message, .. } => (CauseKind::Closed, message.clone()),
    DriverKind::Io(io) => (io_kind(io), io.to_string()),
    DriverKind::ServerSelection { message, .. } => {
      // "Server selection timeout: No available servers. Topology: { ... Error: ... }":
      // the last error of each server says why.
      let m = message.to_ascii_lowercase();
      let kind = if m.contains("connection refused") {
        CauseKind::Refused
      } else if m.contains("authentication") || m.contains("auth failed") {
        CauseKind::Auth
      } else if m.contains("tls") || m.contains("certificate") {
        CauseKind::Tls
      } else if m.contains("failed to lookup") || m.contains("dns") || m.contains("resolve") {
        CauseKind::Dns
      } else {
        CauseKind::Timeout
      };
      (kind, message.clone())
    }
    _ => (CauseKind::Io, e.kind.to_string()),
  }
}

fn io_kind(io: &std::io::Error) -> CauseKind {
  use std::io::ErrorKind as K;
  match io.kind() {
    K::ConnectionRefused => CauseKind::Refused,
    K::TimedOut => CauseKind::Timeout,
    K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
      CauseKind::Closed
    }
    _ => CauseKind::Io,
  }
}
