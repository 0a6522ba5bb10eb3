//! Whole-document automerge work that must not hold up every other document.
//!
//! Workers and saves run as tasks on the application's runtime. Most of what they do takes
//! microseconds, but some of it grows with the document: loading it from storage, taking in a
//! peer's whole document (automerge 0.12 sends one to a peer that has nothing, and the untrusted
//! guard then re-encodes every change), checking a compaction by loading it back. For a document
//! of two million operations each of these takes about a second, and a sync server on two cores
//! has two runtime threads: two such documents would stop every other document's sync meanwhile
//! (`cargo bench -p tandem-repo --bench stalls` measures it).
//!
//! [`heavy`] runs such work where the runtime's other tasks do not wait for it: on a
//! multi-thread runtime, tokio hands this thread's queue to another thread first
//! ([`tokio::task::block_in_place`]). It keeps the work where it is (it borrows the worker's
//! state and the document's lock) instead of moving it to another thread. [`heavy_owned`] is
//! for calls on an application's task (an import), where block_in_place may not be allowed: it
//! moves owned work to tokio's blocking pool. Small inputs skip both, which cost more than
//! loading a small document, and heavy work takes turns, one per core.

use std::sync::OnceLock;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Inputs of at least this many bytes are handed over; below it, work runs as is, so that the
/// small documents and messages of everyday sync pay nothing. Bytes are a rough measure of work:
/// automerge's columnar encoding packs a run of a hundred thousand repeated characters into
/// about a kilobyte (some 50 ms to load), while ordinary content of that size loads in well
/// under a millisecond.
pub(crate) const HEAVY_BYTES: usize = 1024;

/// Heavy work in this process runs at most this many at a time (one per core): each hand-over
/// puts another thread to work, and a burst of big documents would otherwise start a thread,
/// and hold a whole document's working memory, for each.
fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores)
    })
}

/// Waits for a turn at heavy work; `None` only if the semaphore were closed, which it never is.
async fn turn() -> Option<SemaphorePermit<'static>> {
    permits().acquire().await.ok()
}

/// Runs `work`, on `bytes` of input, without holding up the runtime's other tasks when the input
/// is large: it first waits for a turn (asynchronously), then tokio hands this thread's queue
/// to another thread. Only for tasks the repo spawns: block_in_place panics where it is not
/// allowed, as in a `LocalSet` (an application's task may run in one; see [`heavy_owned`]). A
/// current-thread runtime has no other thread to give its tasks to: there, `work` just runs.
pub(crate) async fn heavy<T>(bytes: usize, work: impl FnOnce() -> T) -> T {
    if bytes < HEAVY_BYTES || !multi_thread() {
        return work();
    }
    let _turn = turn().await;
    tokio::task::block_in_place(work)
}

/// [`heavy`] for work that owns its input, called from an application's task (anywhere): large
/// inputs go to tokio's blocking pool. `None` if the runtime shut down before the work ran.
pub(crate) async fn heavy_owned<T: Send + 'static>(
    bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if bytes < HEAVY_BYTES {
        return Some(work());
    }
    let _turn = turn().await;
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Some(value),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => None,
    }
}

fn multi_thread() -> bool {
    Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_current_thread_runtime_the_work_runs_in_place() {
        // block_in_place would panic here.
        assert_eq!(heavy(HEAVY_BYTES * 10, || 7).await, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn owned_work_runs_in_a_local_set_too() {
        let local = tokio::task::LocalSet::new();
        let value = local
            .run_until(async { heavy_owned(HEAVY_BYTES * 10, || 7).await })
            .await;
        assert_eq!(value, Some(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn on_a_multi_thread_runtime_other_tasks_go_on_meanwhile() {
        // The heavy work, in a task on the runtime's only worker thread, waits for another task
        // of that runtime: it ends only if that task runs while the work holds the thread.
        let (tx, rx) = std::sync::mpsc::channel();
        let (go, ready) = tokio::sync::oneshot::channel::<()>();
        let waiting = tokio::spawn(async move {
            let _ = ready.await;
            tx.send(()).unwrap();
        });
        let working = tokio::spawn(async move {
            heavy(HEAVY_BYTES, move || {
                go.send(()).unwrap();
                rx.recv_timeout(std::time::Duration::from_secs(20)).is_ok()
            })
            .await
        });
        assert!(working.await.unwrap(), "the other task never ran");
        waiting.await.unwrap();
    }
}
