//! Crash-safe file replacement: stage the bytes, make them durable, only then give them the key's
//! name, and make the name durable. On Linux the last steps are group-committed (see
//! `group_commit`) and a new key's bytes are staged as an unnamed file (see `unnamed`); elsewhere
//! each write stages a named file, fsyncs it, renames it and fsyncs the directory.
//!
//! NodeFS writes chunks in place, so a crash mid-write leaves a torn chunk that a later load
//! feeds to automerge. Here a reader (in any process) sees the old file or the new one, never a
//! mix, and once a write returns it survives a crash of the process or the machine.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
#[cfg(target_os = "linux")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Staged files older than this belong to no running write (a write takes milliseconds), even if
/// their process id has been reused by an unrelated process.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The staging directory of one store: where writes put their bytes as named files before
/// renaming them into place (everywhere but on Linux, where only overwrites and filesystems
/// without unnamed files do). Names are `<pid>-<sequence>-<nanos>.tmp`, unique across processes
/// sharing the store.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
    /// This process's id, the first part of every staged name (read once: it is a system call).
    pid: u32,
    /// Whether new values are staged as unnamed files in their own directory (Linux, where the
    /// filesystem supports it); otherwise as named files here.
    #[cfg(target_os = "linux")]
    unnamed: AtomicBool,
}

/// A value written (not yet durably) and not yet in place, awaiting group commit.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) enum Staged {
    /// An unnamed file in the target's directory (see [`crate::unnamed`]).
    Unnamed(File),
    /// A named file in the staging directory.
    Named(PathBuf),
}

#[cfg(target_os = "linux")]
impl Staged {
    /// Removes what the staged value left on disk (an unnamed file goes with its descriptor).
    pub(crate) fn discard(self) {
        if let Staged::Named(path) = self {
            let _ = fs::remove_file(path);
        }
    }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl Staging {
    /// Opens (creating it if needed) the staging directory and removes what crashed writers left.
    /// With `unnamed` false every value is staged as a named file even where unnamed files are
    /// available (the fallback path, for tests).
    pub(crate) fn open(dir: PathBuf, unnamed: bool) -> io::Result<Self> {
        #[cfg(not(target_os = "linux"))]
        let _ = unnamed;
        create_dir_all_durable(&dir)?;
        let staging = Staging {
            dir,
            pid: std::process::id(),
            #[cfg(target_os = "linux")]
            unnamed: AtomicBool::new(false),
        };
        #[cfg(target_os = "linux")]
        if unnamed {
            let probe = staging.staged_name();
            let available = crate::unnamed::available(&staging.dir, &probe);
            staging.unnamed.store(available, Ordering::Relaxed);
        }
        staging.remove_abandoned()?;
        Ok(staging)
    }

    /// Deletes staged files whose writer is gone: its process no longer exists, or the file is
    /// older than any write could take. Files of live writers in other processes are left alone.
    fn remove_abandoned(&self) -> io::Result<()> {
        let now = SystemTime::now();
        for entry in fs::read_dir(&self.dir)? {
            remove_if_abandoned(&entry?.path(), now)?;
        }
        Ok(())
    }

    /// The staging directory.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` to a new staged file, without syncing: the first half of a group-committed
    /// save. Also creates the target's directories, here where saves run in parallel, so the
    /// committer only links or renames (empty directories are harmless if the save never
    /// commits).
    #[cfg(target_os = "linux")]
    pub(crate) fn stage(&self, target: &Path, bytes: &[u8]) -> io::Result<Staged> {
        let parent = target
            .parent()
            .ok_or_else(|| io::Error::other("target has no parent"))?;
        // A concurrent remove_range (in this process or another) may take the directory between
        // making it and creating the file in it: make it again, a few times, then stage a named
        // file (whose rename remakes the directory).
        for attempt in 1..=3 {
            match ensure_dir(parent) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 3 => continue,
                made => made?,
            }
            if !self.unnamed.load(Ordering::Relaxed) {
                break;
            }
            match crate::unnamed::create_in(parent) {
                Ok(mut file) => {
                    file.write_all(bytes)?;
                    return Ok(Staged::Unnamed(file));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if crate::unnamed::unsupported(&e) => {
                    tracing::info!(
                        dir = ?parent,
                        error = %e,
                        "the filesystem has no unnamed files; staging named files instead"
                    );
                    self.unnamed.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let staged = self.staged_name();
        let written = File::create(&staged).and_then(|mut file| file.write_all(bytes));
        match written {
            Ok(()) => Ok(Staged::Named(staged)),
            Err(e) => {
                let _ = fs::remove_file(&staged);
                Err(e)
            }
        }
    }

    /// A staging file name no other write, in this process or another, uses.
    pub(crate) fn staged_name(&self) -> PathBuf {
        self.dir.join(format!(
            "{}-{}-{}.tmp",
            self.pid,
            SEQUENCE.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ))
    }

    /// Replaces `target` with `bytes` atomically and durably, syncing this one file and its
    /// directories (the path where group commit is not available).
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    pub(crate) fn write(&self, target: &Path, bytes: &[u8]) -> io::Result<()> {
        let staged = self.staged_name();
        let result = (|| {
            let mut file = File::create(&staged)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            let parent = target
                .parent()
                .ok_or_else(|| io::Error::other("target has no parent"))?;
            create_dir_all_durable(parent)?;
            fs::rename(&staged, target)?;
            sync_dir(parent)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&staged);
        }
        result
    }
}

/// Deletes one staged file if its writer is gone. Another process sharing the store may rename or
/// remove the file at any moment (its commit, or its own cleanup), so a file that vanishes
/// meanwhile is simply done with, never an error.
fn remove_if_abandoned(path: &Path, now: SystemTime) -> io::Result<()> {
    let writer_alive = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(process_exists);
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let age = metadata
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok());
    if writer_alive && !age.is_some_and(|age| age > STALE_AFTER) {
        return Ok(());
    }
    tracing::info!(file = ?path, "removing a temporary file left by an interrupted write");
    // A directory here is a tree a removal moved aside and did not finish deleting.
    let removed = if metadata.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `mkdir -p` for the path of a new file, cheapest when the directory exists or only its last
/// levels are missing (a new document's directories): it tries the directory itself first and
/// climbs only as far as it must. Durability is the caller's (group commit syncs the filesystem).
/// Something other than a directory standing in the way is left for the write to report.
#[cfg(target_os = "linux")]
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let Some(parent) = dir.parent() else {
                return Err(e);
            };
            ensure_dir(parent)?;
            match fs::create_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        }
        Err(e) => Err(e),
    }
}

/// `mkdir -p` that fsyncs the parent of every directory it creates, so the new path survives a
/// crash as surely as the file later renamed into it.
pub(crate) fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.is_dir() {
            break;
        }
        missing.push(d);
        cursor = parent_dir(d);
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            // Another writer (thread or process) created it first: it is theirs to sync, and ours
            // to use.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(e),
        }
        if let Some(parent) = parent_dir(d) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// The directory holding `path`: for a bare relative name (`data`), the current directory,
/// where `Path::parent` says `""`, which no system call takes.
fn parent_dir(path: &Path) -> Option<&Path> {
    match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Some(Path::new(".")),
        parent => parent,
    }
}

/// fsyncs a directory, making the entries created, renamed or removed in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(target_os = "linux")]
fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_exists(_pid: u32) -> bool {
    // Without a portable check, assume alive and rely on the age rule.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_relative_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("data")), Some(Path::new(".")));
        assert_eq!(parent_dir(Path::new("a/b")), Some(Path::new("a")));
        assert_eq!(parent_dir(Path::new("/")), None);
    }

    #[test]
    fn a_staged_file_that_vanishes_during_cleanup_is_not_an_error() {
        let dir = std::env::temp_dir().join(format!("tandem-vanish-{}", std::process::id()));
        let gone = dir.join("1-0-0.tmp");
        assert!(remove_if_abandoned(&gone, SystemTime::now()).is_ok());
    }

    #[test]
    fn cleanup_spares_live_writers_and_removes_dead_ones() {
        let dir = std::env::temp_dir().join(format!("tandem-cleanup-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let live = dir.join(format!("{}-0-0.tmp", std::process::id()));
        let dead = dir.join(format!("{}-0-0.tmp", u32::MAX));
        fs::write(&live, b"in flight").unwrap();
        fs::write(&dead, b"abandoned").unwrap();
        Staging::open(dir.clone(), true).unwrap();
        assert!(live.exists(), "a live writer's file is spared");
        assert!(!dead.exists(), "a dead writer's file is removed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
