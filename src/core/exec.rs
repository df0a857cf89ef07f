//! Where a manager's tasks run. `Spawner::Runtime` is the tokio I/O thread; `Spawner::Local`
//! is the JS thread that owns the manager: its tasks are polled inside that thread's calls
//! into the addon (`LocalExec::run`), so a request whose socket the JS thread drives
//! (`js_io`) never crosses a thread. A task woken from another thread (a tokio timer, a
//! pub/sub notification) is queued and the JS thread is woken once to run it.
//!
//! tokio's timers, sync types and sockets still work in a local task: `run` enters the I/O
//! runtime's context, and their wake-ups reach the task through its waker.

use futures_util::future::{AbortHandle, Abortable, BoxFuture};
use futures_util::task::{waker_ref, ArcWake};
use futures_util::FutureExt;
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use super::{runtime, Wake};

/// Where tasks run.
#[derive(Clone)]
pub enum Spawner {
  Runtime,
  Local(Arc<LocalExec>),
}

impl Spawner {
  /// Runs `fut` to completion (or until aborted).
  pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) -> Task {
    match self {
      Spawner::Runtime => {
        let (abort, reg) = AbortHandle::new_pair();
        let done = Arc::new(Done::default());
        let mark = MarkDone(done.clone());
        drop(runtime::runtime().spawn(async move {
          let _mark = mark;
          let _ = Abortable::new(fut, reg).await;
        }));
        Task(TaskRef::Runtime { abort, done })
      }
      // The local task is its own abort flag and done mark: no allocation beyond the task.
      Spawner::Local(exec) => Task(TaskRef::Local(exec.spawn(Box::pin(fut)))),
    }
  }
}

impl Spawner {
  /// Runs `fut` to completion, with no handle to abort or await it (cheaper).
  pub fn detach(&self, fut: impl Future<Output = ()> + Send + 'static) {
    match self {
      Spawner::Runtime => drop(runtime::runtime().spawn(fut)),
      Spawner::Local(exec) => drop(exec.spawn(Box::pin(fut))),
    }
  }
}

/// A spawned task: it can be aborted (its future is dropped where it runs) and awaited.
pub struct Task(TaskRef);

enum TaskRef {
  Runtime { abort: AbortHandle, done: Arc<Done> },
  Local(Arc<LocalTask>),
}

impl Task {
  pub fn abort(&self) {
    match &self.0 {
      TaskRef::Runtime { abort, .. } => abort.abort(),
      TaskRef::Local(task) => {
        task.aborted.store(true, Ordering::Release);
        // Queued, so its owner drops the future at its next `run`.
        ArcWake::wake_by_ref(task);
      }
    }
  }

  fn done(&self) -> &Done {
    match &self.0 {
      TaskRef::Runtime { done, .. } => done,
      TaskRef::Local(task) => &task.done,
    }
  }

  pub fn is_finished(&self) -> bool {
    self.done().flag.load(Ordering::Acquire)
  }

  /// Resolves once the task finished, was aborted, or was dropped by its executor.
  pub async fn join(self) {
    let done = self.done();
    loop {
      let notified = done.notify.notified();
      tokio::pin!(notified);
      notified.as_mut().enable();
      if self.is_finished() {
        return;
      }
      notified.await;
    }
  }
}

#[derive(Default)]
struct Done {
  flag: AtomicBool,
  notify: tokio::sync::Notify,
}

impl Done {
  fn mark(&self) {
    self.flag.store(true, Ordering::Release);
    self.notify.notify_waiters();
  }
}

struct MarkDone(Arc<Done>);

impl Drop for MarkDone {
  fn drop(&mut self) {
    self.0.mark();
  }
}

thread_local! {
  /// This thread's tag (see `LocalExec::owner`).
  static TAG: u64 = {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
  };
  /// Set while a `LocalExec` runs on this thread.
  static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// A number that tells this thread from every other.
pub fn thread_tag() -> u64 {
  TAG.with(|t| *t)
}

/// Whether a local executor is running its tasks on this thread right now: the JS side
/// reads what they produce as soon as the call returns, so nothing needs waking.
pub fn running_here() -> bool {
  RUNNING.with(Cell::get)
}

/// The tasks of one JS thread's module instance.
pub struct LocalExec {
  /// The owning thread's tag: a wake-up from it needs no wake-up call, since the JS side
  /// follows every call into the addon that can wake a task with `takeIo`, which runs the
  /// queue (lib/sockets.js).
  owner: u64,
  ready: Mutex<VecDeque<Arc<LocalTask>>>,
  /// A wake-up call is on its way and `run` has not started since: one call is enough for
  /// any number of tasks woken meanwhile. A flag, not the queue's length, since tasks the
  /// owner queued may sit there until its next `run`.
  wake_pending: AtomicBool,
  waker: Arc<dyn Wake>,
  me: Weak<LocalExec>,
}

struct LocalTask {
  fut: Mutex<Option<BoxFuture<'static, ()>>>,
  queued: AtomicBool,
  /// `Task::abort` was called: the next `run` drops the future unpolled.
  aborted: AtomicBool,
  /// Marked once the future is gone (finished, panicked or aborted).
  done: Done,
  exec: Weak<LocalExec>,
}

impl ArcWake for LocalTask {
  fn wake_by_ref(task: &Arc<Self>) {
    if task.queued.swap(true, Ordering::AcqRel) {
      return;
    }
    if let Some(exec) = task.exec.upgrade() {
      exec.enqueue(task.clone());
    }
  }
}

impl LocalExec {
  /// An executor for the calling JS thread; `waker` makes that thread call `run` soon.
  pub fn new(waker: Arc<dyn Wake>) -> Arc<LocalExec> {
    Arc::new_cyclic(|me| LocalExec {
      owner: thread_tag(),
      ready: Mutex::new(VecDeque::new()),
      wake_pending: AtomicBool::new(false),
      waker,
      me: me.clone(),
    })
  }

  fn spawn(&self, fut: BoxFuture<'static, ()>) -> Arc<LocalTask> {
    let task = Arc::new(LocalTask {
      fut: Mutex::new(Some(fut)),
      queued: AtomicBool::new(true),
      aborted: AtomicBool::new(false),
      done: Done::default(),
      exec: self.me.clone(),
    });
    self.enqueue(task.clone());
    task
  }

  fn enqueue(&self, task: Arc<LocalTask>) {
    self.ready.lock().push_back(task);
    if thread_tag() != self.owner && !self.wake_pending.swap(true, Ordering::AcqRel) {
      self.waker.wake();
    }
  }

  /// Polls every ready task (those they wake included) until none is ready. Only the
  /// owning thread calls it. A task that panics is dropped (a request's own guard settles
  /// it as `E_INTERNAL`); the others go on.
  pub fn run(&self) {
    if RUNNING.with(|r| r.replace(true)) {
      return; // already running further up this thread's stack
    }
    // Cleared even if a task's drop panics on the way out.
    let _running = NotRunning;
    // Before the first pop: a task queued from now on gets a wake-up of its own.
    self.wake_pending.store(false, Ordering::Release);
    let _rt = runtime::runtime().enter();
    loop {
      // Popped apart from the loop: a guard in a `while let` would live through the poll.
      let next = self.ready.lock().pop_front();
      let Some(task) = next else { break };
      task.queued.store(false, Ordering::Release);
      let waker = waker_ref(&task);
      let mut cx = Context::from_waker(&waker);
      let mut slot = task.fut.lock();
      let Some(fut) = slot.as_mut() else { continue };
      if !task.aborted.load(Ordering::Acquire) {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll_unpin(&mut cx))) {
          Ok(Poll::Pending) => continue,
          Ok(Poll::Ready(())) | Err(_) => {}
        }
      }
      *slot = None;
      drop(slot);
      task.done.mark();
    }
  }
}

struct NotRunning;

impl Drop for NotRunning {
  fn drop(&mut self) {
    RUNNING.with(|r| r.set(false));
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::AtomicUsize;

  #[derive(Default)]
  struct Count(AtomicUsize);
  impl Wake for Count {
    fn wake(&self) {
      self.0.fetch_add(1, Ordering::SeqCst);
    }
  }

  #[test]
  fn local_tasks_run_on_the_owner_and_a_wake_from_elsewhere_wakes_it_once() {
    let wakes = Arc::new(Count::default());
    let exec = LocalExec::new(wakes.clone());
    let spawner = Spawner::Local(exec.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<u32>();
    let task = spawner.spawn(async move {
      let v = rx.await.unwrap();
      let _ = done_tx.send(v + 1);
    });
    // Spawned on the owning thread: queued, nothing woken, run by the next `run`.
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    exec.run();
    assert!(!task.is_finished());
    // Woken from another thread: one wake-up, and the task finishes at the next `run`.
    std::thread::spawn(move || tx.send(41).unwrap())
      .join()
      .unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    exec.run();
    assert_eq!(done_rx.try_recv().unwrap(), 42);
    assert!(task.is_finished());
  }

  #[test]
  fn a_wake_from_elsewhere_wakes_the_owner_even_with_its_own_tasks_queued() {
    let wakes = Arc::new(Count::default());
    let exec = LocalExec::new(wakes.clone());
    let spawner = Spawner::Local(exec.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let waiting = spawner.spawn(async move { rx.await.unwrap() });
    exec.run();
    // The owner queues a task and has not run it yet when another thread wakes `waiting`.
    spawner.detach(async {});
    std::thread::spawn(move || tx.send(()).unwrap())
      .join()
      .unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    exec.run();
    assert!(waiting.is_finished());
  }

  #[test]
  fn a_local_task_aborted_from_elsewhere_is_dropped_on_its_owner_and_joins() {
    struct OnDrop(Arc<AtomicU64>);
    impl Drop for OnDrop {
      fn drop(&mut self) {
        self.0.store(thread_tag(), Ordering::SeqCst);
      }
    }
    let wakes = Arc::new(Count::default());
    let exec = LocalExec::new(wakes.clone());
    let dropped_on = Arc::new(AtomicU64::new(0));
    let guard = OnDrop(dropped_on.clone());
    let task = Spawner::Local(exec.clone()).spawn(async move {
      let _guard = guard;
      std::future::pending::<()>().await
    });
    exec.run();
    let task = std::thread::spawn(move || {
      task.abort();
      task
    })
    .join()
    .unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert!(!task.is_finished());
    exec.run();
    assert!(task.is_finished());
    assert_eq!(dropped_on.load(Ordering::SeqCst), thread_tag());
    runtime::runtime().block_on(task.join());
  }

  #[test]
  fn an_aborted_or_panicking_task_is_dropped_and_counts_as_finished() {
    let exec = LocalExec::new(Arc::new(Count::default()));
    let spawner = Spawner::Local(exec.clone());
    let pending = spawner.spawn(std::future::pending());
    let panics = spawner.spawn(async { panic!("boom") });
    exec.run();
    assert!(panics.is_finished());
    assert!(!pending.is_finished());
    pending.abort();
    exec.run();
    assert!(pending.is_finished());
  }
}
