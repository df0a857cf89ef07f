//! What every layer shares: ids, the inbox that wakes a JS thread, the clock, lock tokens,
//! key encoding, the error type and the I/O runtime. Nothing here knows about N-API or about
//! a particular store.

pub mod clock;
pub mod error;
pub mod exec;
pub mod ids;
pub mod inbox;
pub mod js_io;
pub mod key;
pub mod outcome;
pub mod runtime;
pub mod task;
pub mod token;

pub use error::{Cause, CauseKind, Error, ErrorKind};
pub use exec::{LocalExec, Spawner, Task};
pub use ids::{LockId, ManagerId, RequestId, WaiterId};
pub use inbox::{Event, Inbox, Signal, Wake};
pub use outcome::{Lease, Outcome};

/// A lock key: the WTF-8 bytes of the JS string (see `key`), shared, never copied again.
pub type Key = std::sync::Arc<[u8]>;
