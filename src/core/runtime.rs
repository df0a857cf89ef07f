//! The tokio runtime for network I/O (the Redis backend only; the in-memory path never
//! touches it). Its threads are native threads: they never keep the Node process alive.

use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

pub fn runtime() -> &'static Runtime {
  static RT: OnceLock<Runtime> = OnceLock::new();
  RT.get_or_init(|| {
    Builder::new_multi_thread()
      // One I/O thread: the JS thread is the other core's main user.
      .worker_threads(1)
      .thread_name("oxlock-io")
      .enable_all()
      .build()
      .expect("cannot start the oxlock I/O runtime")
  })
}
