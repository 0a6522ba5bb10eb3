//! Group commit: many concurrent saves share two filesystem syncs.
//!
//! A durable save needs its bytes on disk before its rename, and the rename on disk before it
//! returns. Done per save that is several fsyncs each (file, directory, every new directory's
//! parent). Here a save stages its file without syncing and hands it to one committer thread,
//! which takes every save waiting at that moment as a batch and then:
//!
//! 1. `syncfs` — every staged file of the batch is on disk;
//! 2. renames each staged file over its target (its directories were made while staging);
//! 3. `syncfs` — the renames and new directories are on disk;
//! 4. answers each save.
//!
//! The ordering keeps the crash guarantee of the per-file path: a target is only ever replaced by
//! a file whose bytes are already durable. While one batch syncs, the next one gathers, so the
//! cost per save falls as load rises. `syncfs` flushes the whole filesystem, so on a disk busy
//! with unrelated writes a batch waits for those too; that is the price of two syncs per batch.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

/// How many saves one batch takes at most, so a flood of saves still gets answers in rounds.
const MAX_BATCH: usize = 4096;

struct Pending {
    staged: PathBuf,
    target: PathBuf,
    done: oneshot::Sender<io::Result<()>>,
}

/// The handle saves use to reach the committer thread. The thread ends when every handle is gone.
#[derive(Debug)]
pub(crate) struct GroupCommitter {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommitter {
    /// Starts the committer for a store whose staging directory is `staging_dir`.
    pub(crate) fn start(staging_dir: &Path) -> io::Result<Self> {
        let sync_handle = File::open(staging_dir)?;
        let (queue, incoming) = mpsc::channel();
        std::thread::Builder::new()
            .name("tandem-fs-commit".into())
            .spawn(move || run(&sync_handle, &incoming))?;
        Ok(GroupCommitter { queue })
    }

    /// Moves the (unsynced) `staged` file over `target` durably, in the next batch.
    pub(crate) async fn commit(&self, staged: PathBuf, target: PathBuf) -> io::Result<()> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                staged,
                target,
                done,
            })
            .map_err(|_| io::Error::other("the commit thread has stopped"))?;
        answer
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the commit thread stopped mid-batch")))
    }
}

fn run(sync_handle: &File, incoming: &mpsc::Receiver<Pending>) {
    while let Ok(first) = incoming.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        commit_batch(sync_handle, batch);
    }
}

fn commit_batch(sync_handle: &File, batch: Vec<Pending>) {
    if let Err(e) = syncfs(sync_handle) {
        for pending in batch {
            let _ = fs::remove_file(&pending.staged);
            let _ = pending.done.send(Err(io::Error::new(
                e.kind(),
                format!("syncing staged data: {e}"),
            )));
        }
        return;
    }
    let mut renamed = Vec::with_capacity(batch.len());
    for pending in batch {
        // The directories were made while staging; a concurrent remove_range may have removed
        // them since, so make them again if the rename finds them gone.
        let moved = fs::rename(&pending.staged, &pending.target).or_else(|e| {
            match pending.target.parent() {
                Some(parent) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(parent)
                    .and_then(|()| fs::rename(&pending.staged, &pending.target)),
                _ => Err(e),
            }
        });
        match moved {
            Ok(()) => renamed.push(pending),
            Err(e) => {
                let _ = fs::remove_file(&pending.staged);
                let _ = pending.done.send(Err(e));
            }
        }
    }
    let synced = syncfs(sync_handle);
    for pending in renamed {
        let answer = match &synced {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), format!("syncing renames: {e}"))),
        };
        let _ = pending.done.send(answer);
    }
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
