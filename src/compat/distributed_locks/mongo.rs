//! distributed-locks-mongodb's MongoStorage: documents `{ _id: <key>, value, ttl
//! (seconds), obtained_at (a date from the server's clock) }` in `<collectionName>`, keys
//! as they are (upstream has no prefix). Upstream's bugs fixed, compatibly with its
//! processes on one collection: every call connects first (upstream reported success
//! without touching the database when `init()` had not run), acquisition and takeover are
//! one atomic upserting `findOneAndUpdate` (a duplicate key means "held"), expired
//! documents are cleaned up, fractional ttls work, and every call is bounded in time.
//!
//! Expired means `obtained_at + ttl * 1000 < now` on the server's clock, which upstream's
//! readers compute too. `now` is a moment no later than the server's clock (see
//! `crate::mongo`): a lock is never taken over before it expired there.

use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::options::{ReturnDocument, UpdateModifications};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::compat::{values, Client, Link};
use crate::core::{Cause, Error, Outcome};
use crate::mongo::{server_code, Mongo, CLOCK_REFRESH, DUPLICATE_KEY};

pub struct Storage {
  pub mongo: Mongo,
  /// How often expired documents are deleted while the storage is open (None: never).
  cleanup_every: Option<Duration>,
  /// Whether the background job (clock refresh, clean-up) runs.
  started: AtomicBool,
}

impl Storage {
  pub fn new(mongo: Mongo, cleanup_every: Option<Duration>) -> Storage {
    Storage {
      mongo,
      cleanup_every,
      started: AtomicBool::new(false),
    }
  }
}

fn storage(c: &Client) -> Result<&Arc<Storage>, Error> {
  match &c.link {
    Link::Mongo(s) => Ok(s),
    _ => Err(Error::internal(
      "a MongoDB command on a face that is not on MongoDB",
    )),
  }
}

fn unavailable(cause: Cause) -> Error {
  Error::unavailable(1, vec![cause])
}

/// `obtained_at + ttl * 1000`: when a document's lock expires (null when either is missing:
/// null sorts before every date, so such a document counts as expired).
fn expiry() -> Bson {
  Bson::Document(doc! { "$add": ["$obtained_at", { "$multiply": ["$ttl", 1000] }] })
}

/// The documents whose lock expired before `now`.
fn expired_before(now: DateTime) -> Document {
  doc! { "$expr": { "$lt": [expiry(), now] } }
}

/// Deletes the lock documents that expired; returns how many.
async fn sweep(s: &Storage) -> Result<u64, Cause> {
  let now = s.mongo.server_now().await?;
  let mut filter = doc! { "obtained_at": { "$type": "date" }, "ttl": { "$type": "number" } };
  filter.extend(expired_before(now));
  let r = s
    .mongo
    .bounded("deleteMany", s.mongo.collection.delete_many(filter))
    .await?;
  Ok(r.deleted_count)
}

/// Starts the background job once: it reads the server's clock every `CLOCK_REFRESH` and
/// cleans up every `cleanup_every`. It holds the storage weakly: it ends when the face is
/// closed (`Client::close` aborts it) or dropped.
fn start(c: &Client, s: &Arc<Storage>) {
  if s.started.swap(true, Ordering::SeqCst) {
    return;
  }
  let tick = s
    .cleanup_every
    .map_or(CLOCK_REFRESH, |d| d.min(CLOCK_REFRESH));
  let weak = Arc::downgrade(s);
  c.start_job("mongo", async move {
    let mut swept = Instant::now();
    loop {
      tokio::time::sleep(tick).await;
      let Some(s) = weak.upgrade() else { return };
      if s.mongo.clock_age().is_none_or(|age| age >= CLOCK_REFRESH) {
        // A failure is the next call's to report.
        let _ = s.mongo.read_clock().await;
      }
      if let Some(every) = s.cleanup_every {
        if swept.elapsed() >= every {
          let _ = sweep(&s).await;
          swept = Instant::now();
        }
      }
    }
  });
}

/// Connects (reads the server's clock), cleans up expired documents and starts the
/// background job. `ints`: [1, documents deleted].
pub async fn init(c: Arc<Client>) -> Outcome {
  let r = async {
    let s = storage(&c)?;
    s.mongo.read_clock().await.map_err(unavailable)?;
    let swept = match s.cleanup_every {
      Some(_) => sweep(s).await.map_err(unavailable)?,
      None => 0,
    };
    start(&c, s);
    Ok((vec![1, swept as i64], Vec::new()))
  };
  values(r.await)
}

/// Takes `key` for `ttl_s` seconds if it is free or its holder's ttl ran out: one
/// `findOneAndUpdate` on `_id` and "expired", upserting, so a free key is inserted and an
/// expired one taken over in the same operation; a duplicate key means someone holds it.
/// `ints[0]`: 1 if taken.
pub async fn set(c: Arc<Client>, key: String, value: String, ttl_s: f64) -> Outcome {
  let r = async {
    let s = storage(&c)?;
    start(&c, s);
    let now = s.mongo.server_now().await.map_err(unavailable)?;
    let mut filter = doc! { "_id": &key };
    filter.extend(expired_before(now));
    let whole = ttl_s.ceil();
    let update: UpdateModifications = if whole == ttl_s {
      doc! {
        "$set": { "value": &value, "ttl": whole as i32 },
        "$currentDate": { "obtained_at": true },
      }
      .into()
    } else {
      // A fractional ttl: `ttl` holds it rounded up, as a whole number of seconds
      // (upstream's readers add whole seconds), and `obtained_at` is the server's clock
      // moved back by the difference, so `obtained_at + ttl` is exactly now + the ttl
      // asked for, for every reader. (A pipeline: `$currentDate` takes no offset.)
      let back_ms = ((whole - ttl_s) * 1000.0).round() as i64;
      vec![doc! { "$set": {
        "value": { "$literal": &value },
        "ttl": whole as i32,
        "obtained_at": { "$subtract": ["$$NOW", back_ms] },
      } }]
      .into()
    };
    let op = s
      .mongo
      .collection
      .find_one_and_update(filter, update)
      .upsert(true)
      .return_document(ReturnDocument::After)
      .projection(doc! { "_id": 1 });
    let taken = match s.mongo.within("findOneAndUpdate", op).await {
      Ok(Ok(doc)) => doc.is_some(),
      Ok(Err(e)) if server_code(&e) == Some(DUPLICATE_KEY) => false,
      Ok(Err(e)) => return Err(unavailable(s.mongo.cause(&e))),
      Err(cause) => return Err(unavailable(cause)),
    };
    Ok((vec![taken as i64], Vec::new()))
  };
  values(r.await)
}

/// Deletes `key` if it holds `value`. `ints[0]`: 1 if deleted.
pub async fn unset(c: Arc<Client>, key: String, value: String) -> Outcome {
  let r = async {
    let s = storage(&c)?;
    start(&c, s);
    let filter = doc! { "_id": &key, "value": &value };
    let r = s
      .mongo
      .bounded("deleteOne", s.mongo.collection.delete_one(filter))
      .await
      .map_err(unavailable)?;
    Ok((vec![r.deleted_count as i64], Vec::new()))
  };
  values(r.await)
}
