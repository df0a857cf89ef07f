//! What every layer shares: ids, the inbox that wakes a JS thread, the clock, lock tokens,
//! key encoding, the error type and the I/O runtime. Nothing here knows about N-API or about
//! a particular store.

pub mod clock;
pub mod error;
pub mod ids;
pub mod inbox;
pub mod key;
pub mod outcome;
pub mod runtime;
pub mod token;

pub use error::{Cause, CauseKind, Error, ErrorKind};
pub use ids::{LockId, ManagerId, RequestId, WaiterId};
pub use inbox::{Event, Inbox, Wake};
pub use outcome::{Lease, Outcome};
