//! A pool of connections to one PostgreSQL database (deadpool-postgres on the I/O
//! runtime) and the one way statements run on it: bounded in time, with every failure
//! turned into a `Cause` that names the server and never shows a password.

use deadpool_postgres::{Manager, ManagerConfig, Object, RecyclingMethod, Runtime};
use std::error::Error as _;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::tls;
use crate::config::PgDatabase;
use crate::core::{Cause, CauseKind, Error};
use crate::remote::Health;
use std::sync::Arc;

pub struct Pool {
  inner: deadpool_postgres::Pool,
  /// For the manager's `error` / `reconnect` events.
  pub health: Arc<Health>,
  pub db: PgDatabase,
  pub connect_timeout: Duration,
  pub query_timeout: Duration,
}

impl Pool {
  /// Connections open lazily, on first use, up to `size`.
  pub fn new(
    db: &PgDatabase,
    size: usize,
    connect_timeout: Duration,
    query_timeout: Duration,
  ) -> Result<Pool, Error> {
    let mut config = db.config.clone();
    config.connect_timeout(connect_timeout);
    // Every decision is one statement that must not raise a serialization failure (READ
    // COMMITTED, whatever the role's default), and the server gives up on a statement when
    // we do (a row lock held by someone's open transaction must not pile up our calls).
    let options = format!(
      "{} -c default_transaction_isolation=read\\ committed -c statement_timeout={}",
      config.get_options().unwrap_or(""),
      query_timeout.as_millis()
    );
    config.options(options.trim_start());
    let recycling = ManagerConfig {
      recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &db.tls {
      None => Manager::from_config(config, NoTls, recycling),
      Some(t) => Manager::from_config(config, tls::connector(t)?, recycling),
    };
    let inner = deadpool_postgres::Pool::builder(manager)
      .max_size(size)
      .runtime(Runtime::Tokio1)
      .wait_timeout(Some(connect_timeout))
      .create_timeout(Some(connect_timeout))
      .recycle_timeout(Some(connect_timeout))
      .build()
      .map_err(|e| Error::internal(format!("cannot build the PostgreSQL pool: {e}")))?;
    Ok(Pool {
      inner,
      health: Health::new(&db.label),
      db: db.clone(),
      connect_timeout,
      query_timeout,
    })
  }

  pub fn label(&self) -> &str {
    &self.db.label
  }

  /// A connection of the pool, within the connect timeout.
  pub async fn client(&self) -> Result<Object, Cause> {
    use deadpool_postgres::PoolError;
    match self.inner.get().await {
      Ok(c) => Ok(c),
      Err(PoolError::Backend(e)) => Err(self.cause(&e)),
      Err(PoolError::Timeout(_)) => Err(self.timeout("connecting")),
      Err(PoolError::Closed) => Err(self.fail(CauseKind::Closed, "the pool is closed".into())),
      Err(e) => Err(self.fail(CauseKind::Io, e.to_string())),
    }
  }

  /// Runs one prepared statement (prepared once per connection) within the query timeout.
  /// `Err(Sent(..))`: the statement may have run on the server (it timed out or the
  /// connection broke after it was sent), so what it would have done may be done.
  pub async fn query(
    &self,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
  ) -> Result<Vec<Row>, Failure> {
    let r = self.run(sql, params).await;
    match &r {
      Ok(_) => self.health.ok(),
      // The server answered (with an error of its own): it is up.
      Err(Failure::NotSent(c)) if c.kind == CauseKind::Server => self.health.ok(),
      Err(Failure::NotSent(c) | Failure::Sent(c)) => self.health.failed(c.kind, &c.message),
    }
    r
  }

  async fn run(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Failure> {
    let client = self.client().await.map_err(Failure::NotSent)?;
    let run = async {
      let statement = client.prepare_cached(sql).await?;
      client.query(&statement, params).await
    };
    match tokio::time::timeout(self.query_timeout, run).await {
      Ok(Ok(rows)) => Ok(rows),
      Ok(Err(e)) if e.as_db_error().is_some() && !client.is_closed() => {
        Err(Failure::NotSent(self.cause(&e)))
      }
      Ok(Err(e)) => {
        drop(Object::take(client));
        Err(Failure::Sent(self.cause(&e)))
      }
      Err(_) => {
        drain(client);
        Err(Failure::Sent(self.timeout("waiting for the answer")))
      }
    }
  }

  /// Runs statements without parameters (schema set-up) within the query timeout.
  pub async fn batch(&self, sql: &str) -> Result<(), Cause> {
    let client = self.client().await?;
    match tokio::time::timeout(self.query_timeout, client.batch_execute(sql)).await {
      Ok(Ok(())) => Ok(()),
      Ok(Err(e)) => {
        drop(Object::take(client));
        Err(self.cause(&e))
      }
      Err(_) => {
        drain(client);
        Err(self.timeout("waiting for the answer"))
      }
    }
  }

  /// Closes idle connections and refuses new ones.
  pub fn close(&self) {
    self.inner.close();
  }

  fn fail(&self, kind: CauseKind, message: String) -> Cause {
    Cause {
      node: self.db.label.clone(),
      kind,
      message,
    }
  }

  fn timeout(&self, what: &str) -> Cause {
    let ms = if what == "connecting" {
      self.connect_timeout
    } else {
      self.query_timeout
    };
    self.fail(
      CauseKind::Timeout,
      format!("no answer within {} ms ({what})", ms.as_millis()),
    )
  }

  pub fn cause(&self, e: &tokio_postgres::Error) -> Cause {
    let (kind, message) = describe(e);
    self.fail(kind, message)
  }
}

/// Why a statement failed, and whether it may have run anyway.
#[derive(Debug)]
pub enum Failure {
  /// It did not reach the server, or the server refused it: nothing was done.
  NotSent(Cause),
  /// It was sent and its answer is unknown (timed out, the connection broke).
  Sent(Cause),
}

impl Failure {
  pub fn cause(self) -> Cause {
    match self {
      Failure::NotSent(c) | Failure::Sent(c) => c,
    }
  }
}

/// How long a connection whose statement timed out may take to answer before it is closed.
const DRAIN_MAX: Duration = Duration::from_secs(30);

/// A connection whose statement timed out keeps its pool slot until the server has
/// answered it (the answer is read and thrown away; `statement_timeout` bounds it), then
/// goes back to the pool; if it never answers, it is closed. So `poolSize` bounds the
/// connections a manager opens also while the server is slow, and no answer is ever read
/// as that of a later statement.
fn drain(client: Object) {
  crate::core::runtime::runtime().spawn(async move {
    match tokio::time::timeout(DRAIN_MAX, client.simple_query("")).await {
      Ok(Ok(_)) => drop(client),
      _ => drop(Object::take(client)),
    }
  });
}

/// What went wrong, in words that never include the password (the driver's messages
/// and the server's do not carry it).
pub fn describe(e: &tokio_postgres::Error) -> (CauseKind, String) {
  if let Some(db) = e.as_db_error() {
    let code = db.code().code();
    let kind = match code {
      // invalid_authorization_specification, invalid_password
      "28000" | "28P01" => CauseKind::Auth,
      // admin_shutdown, crash_shutdown, cannot_connect_now
      "57P01" | "57P02" | "57P03" => CauseKind::Closed,
      _ => CauseKind::Server,
    };
    return (kind, format!("{} ({code})", db.message()));
  }
  let mut source = e.source();
  while let Some(s) = source {
    if let Some(io) = s.downcast_ref::<std::io::Error>() {
      use std::io::ErrorKind as K;
      let tls = io
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
      let kind = match io.kind() {
        _ if tls => CauseKind::Tls,
        K::ConnectionRefused => CauseKind::Refused,
        K::TimedOut => CauseKind::Timeout,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
          CauseKind::Closed
        }
        _ if io.to_string().contains("lookup") => CauseKind::Dns,
        _ => CauseKind::Io,
      };
      return (kind, io.to_string());
    }
    if s.downcast_ref::<rustls::Error>().is_some() {
      return (CauseKind::Tls, s.to_string());
    }
    source = s.source();
  }
  let text = e.to_string();
  let kind = if e.is_closed() {
    CauseKind::Closed
  } else if text.contains("tls") || text.contains("TLS") || text.contains("ssl") {
    CauseKind::Tls
  } else if text.contains("timeout") || text.contains("timed out") {
    CauseKind::Timeout
  } else {
    CauseKind::Io
  };
  (kind, text)
}
