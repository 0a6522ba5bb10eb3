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
//! state and the document's lock) instead of moving it to another thread. Small inputs skip the
//! hand-over, which costs more than loading a small document.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Inputs of at least this many bytes are handed over; below it, work runs as is. Automerge's
/// columnar encoding makes bytes a rough measure of work (a kilobyte can hold a hundred thousand
/// repeated characters), but a document or message under a kilobyte holds at most a few
/// hundred changes that differ, whose load or apply takes about as long as the hand-over.
pub(crate) const HEAVY_BYTES: usize = 1024;

/// Runs `work`, on `bytes` of input, without holding up the runtime's other tasks when the input
/// is large. A current-thread runtime has no other thread to give them to: there, and outside
/// any runtime, `work` just runs.
pub(crate) fn heavy<T>(bytes: usize, work: impl FnOnce() -> T) -> T {
    let multi_thread = Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread);
    if bytes >= HEAVY_BYTES && multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_the_work_just_runs() {
        assert_eq!(heavy(HEAVY_BYTES * 10, || 7), 7);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_current_thread_runtime_the_work_runs_in_place() {
        // block_in_place would panic here.
        assert_eq!(heavy(HEAVY_BYTES * 10, || 7), 7);
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
        });
        assert!(working.await.unwrap(), "the other task never ran");
        waiting.await.unwrap();
    }
}
