//! Group commit: many concurrent saves share their filesystem syncs.
//!
//! A durable save needs its bytes on disk before its file takes its name, and the name on disk
//! before it returns. Done per save that is several fsyncs each (file, directory, every new
//! directory's parent). Here a save stages its value without syncing (an unnamed file in the
//! target's directory, or a named one in the staging directory; see [`Staged`]) and hands it to
//! one committer thread, which takes every save waiting at that moment as a batch and then:
//!
//! 1. `syncfs`: every staged file of the batch is on disk;
//! 2. puts each staged file in place: links an unnamed file to its target's name, or renames a
//!    named one over its target (the directories were made while staging);
//! 3. `syncfs`: the new names and directories are on disk;
//! 4. answers each save.
//!
//! The ordering keeps the crash guarantee of the per-file path: a target only ever names a file
//! whose bytes are already durable. Under load, step 3 of one batch is step 1 of the next, so a
//! batch costs one sync, and while one batch syncs the next one gathers: the cost per save falls
//! as load rises. `syncfs` flushes the whole filesystem, so on a disk busy with unrelated writes a
//! batch waits for those too; that is the price of so few syncs.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit};

use crate::atomic::{ensure_dir, Staged, Staging};

/// How many saves one batch takes at most, so a flood of saves still gets answers in rounds.
const MAX_BATCH: usize = 4096;

struct Pending {
    staged: Staged,
    target: PathBuf,
    done: oneshot::Sender<io::Result<()>>,
    /// The save's place among the staged files a store may hold open; freed with the file.
    _slot: OwnedSemaphorePermit,
}

/// A save handed to the stager threads: the value and where it goes.
struct Job {
    target: PathBuf,
    bytes: Vec<u8>,
    done: oneshot::Sender<io::Result<()>>,
    slot: OwnedSemaphorePermit,
}

/// The handle saves use to reach the stager threads, which stage each value and pass it to the
/// committer thread. The threads end when every handle is gone.
///
/// Saves run on these few threads rather than one blocking-pool task each: staging is CPU work
/// in the filesystem (directory and inode creation), so more threads than cores only contend,
/// and a stager hands its file straight to the committer, without a return trip through the
/// async runtime.
#[derive(Debug)]
pub(crate) struct GroupCommitter {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommitter {
    /// Starts the stager threads and the committer for a store staging through `staging`.
    pub(crate) fn start(staging: Arc<Staging>) -> io::Result<Self> {
        let sync_handle = File::open(staging.dir())?;
        let (commits, incoming) = mpsc::channel();
        let committer_staging = staging.clone();
        std::thread::Builder::new()
            .name("tandem-fs-commit".into())
            .spawn(move || run(&sync_handle, &committer_staging, &incoming))?;
        let (jobs, queued) = mpsc::channel();
        let queued = Arc::new(Mutex::new(queued));
        for _ in 0..stager_count() {
            let (staging, queued, commits) = (staging.clone(), queued.clone(), commits.clone());
            std::thread::Builder::new()
                .name("tandem-fs-stage".into())
                .spawn(move || stage_jobs(&staging, &queued, &commits))?;
        }
        Ok(GroupCommitter { jobs })
    }

    /// Writes `bytes` at `target` atomically and durably, in the next batch. `slot` is released
    /// once the staged file is closed.
    pub(crate) async fn save(
        &self,
        target: PathBuf,
        bytes: Vec<u8>,
        slot: OwnedSemaphorePermit,
    ) -> io::Result<()> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                target,
                bytes,
                done,
                slot,
            })
            .map_err(|_| io::Error::other("the stager threads have stopped"))?;
        answer
            .await
            .unwrap_or_else(|_| Err(io::Error::other("a save was dropped mid-commit")))
    }
}

/// Two stagers per core (at most eight per store): one can wait for a directory block to be read
/// while the other works.
fn stager_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().saturating_mul(2).min(8))
}

/// A stager thread: stages each job it takes and passes it to the committer.
fn stage_jobs(
    staging: &Staging,
    queued: &Mutex<mpsc::Receiver<Job>>,
    commits: &mpsc::Sender<Pending>,
) {
    loop {
        // The lock is held while waiting, so one idle stager waits and the others queue on the
        // lock; a poisoned lock (a stager panicked) still guards a sound receiver.
        let job = match queued.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let Job {
            target,
            bytes,
            done,
            slot,
        } = job;
        match staging.stage(&target, &bytes) {
            Ok(staged) => {
                let pending = Pending {
                    staged,
                    target,
                    done,
                    _slot: slot,
                };
                if let Err(mpsc::SendError(pending)) = commits.send(pending) {
                    pending.staged.discard();
                    let _ = pending
                        .done
                        .send(Err(io::Error::other("the commit thread has stopped")));
                }
            }
            Err(e) => {
                let _ = done.send(Err(e));
            }
        }
    }
}

/// The committer loop. Under load, one `syncfs` does two jobs: it makes the batch just taken
/// durable before that batch's files take their names, and the previous batch's names durable
/// before their answers. A lone save still waits for two syncs.
fn run(sync_handle: &File, staging: &Staging, incoming: &mpsc::Receiver<Pending>) {
    // Saves in place whose names no sync has covered yet.
    let mut placed: Vec<Pending> = Vec::new();
    loop {
        let mut batch = Vec::new();
        if placed.is_empty() {
            match incoming.recv() {
                Ok(first) => batch.push(first),
                // Every handle is gone and nothing is owed an answer.
                Err(_) => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let synced = syncfs(sync_handle);
        for pending in placed.drain(..) {
            let answer = match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), format!("syncing new names: {e}"))),
            };
            let _ = pending.done.send(answer);
        }
        match &synced {
            Ok(()) => placed = place_all(batch, staging),
            Err(e) => {
                for pending in batch {
                    pending.staged.discard();
                    let _ = pending.done.send(Err(io::Error::new(
                        e.kind(),
                        format!("syncing staged data: {e}"),
                    )));
                }
            }
        }
    }
}

/// Puts a batch's staged files in place (their data already durable), answering failures at once
/// and returning the saves whose new names now need a sync.
fn place_all(batch: Vec<Pending>, staging: &Staging) -> Vec<Pending> {
    batch
        .into_iter()
        .filter_map(|pending| place_one(pending, staging))
        .collect()
}

/// Puts one staged file in place: the save back if its new name now needs a sync, or `None` once
/// its failure is answered.
fn place_one(pending: Pending, staging: &Staging) -> Option<Pending> {
    let placed = match &pending.staged {
        Staged::Unnamed(file) => link_or_replace(file, &pending.target, staging),
        Staged::Named(path) => rename_into_place(path, &pending.target),
    };
    match placed {
        Ok(()) => Some(pending),
        Err(e) => {
            let Pending { staged, done, .. } = pending;
            staged.discard();
            let _ = done.send(Err(e));
            None
        }
    }
}

/// Names an unnamed file `target`. A link cannot replace a file, so when `target` exists (an
/// overwrite: sync states, the storage id) the file is linked under a staging name and renamed
/// over it, which is atomic.
fn link_or_replace(file: &File, target: &Path, staging: &Staging) -> io::Result<()> {
    match with_parent(target, || crate::unnamed::link(file, target)) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let named = staging.staged_name();
            crate::unnamed::link(file, &named)?;
            rename_into_place(&named, target).inspect_err(|_| {
                let _ = fs::remove_file(&named);
            })
        }
        linked => linked,
    }
}

/// Renames a staged file over `target`.
fn rename_into_place(staged: &Path, target: &Path) -> io::Result<()> {
    with_parent(target, || fs::rename(staged, target))
}

/// Runs `put`, which gives something the name `target`. The directories were made while staging;
/// a concurrent remove_range may have removed them since, so they are made again if `put` finds
/// them gone.
fn with_parent(target: &Path, put: impl Fn() -> io::Result<()>) -> io::Result<()> {
    put().or_else(|e| match target.parent() {
        Some(parent) if e.kind() == io::ErrorKind::NotFound => {
            ensure_dir(parent).and_then(|()| put())
        }
        _ => Err(e),
    })
}

/// Flushes the filesystem holding `handle` (Linux `syncfs(2)`): data and metadata, journal
/// committed, on return.
fn syncfs(handle: &File) -> io::Result<()> {
    // SAFETY: syncfs takes any open file descriptor and reads no memory of ours; `handle` keeps
    // the descriptor open for the duration of the call.
    let result = unsafe { libc::syncfs(handle.as_raw_fd()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
