//! [`FsStorage`]: the [`StorageAdapter`] over a directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tandem_core::storage::{ChunkKind, StoredDocument};
use tandem_core::{DocumentId, StorageAdapter, StorageError, StorageKey};
use tokio::sync::Semaphore;

use crate::atomic::{sync_dir, Staging};
#[cfg(target_os = "linux")]
use crate::group_commit::GroupCommitter;
use crate::layout::{self, PrefixPath, STAGING_DIR};

/// The directory the tandem server uses when none is given.
pub const DEFAULT_DATA_DIR: &str = "tandem-data";

/// How many file operations one store runs at once unless told otherwise.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// A store in a directory laid out as automerge-repo's `NodeFSStorageAdapter` lays it out, so
/// either can open what the other wrote. Unlike NodeFS, every write is atomic and durable when it
/// returns (see the crate docs). Clones share the store and its concurrency bound.
#[derive(Debug, Clone)]
pub struct FsStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: PathBuf,
    /// Where saves stage (on Linux through the group committer's threads) and removals put what
    /// they delete.
    staging: Arc<Staging>,
    permits: Semaphore,
    /// Saves between staging and commit; each may hold its staged file open until committed.
    #[cfg(target_os = "linux")]
    staged_slots: Arc<Semaphore>,
    #[cfg(target_os = "linux")]
    committer: GroupCommitter,
}

/// How many saves may wait for group commit, as a multiple of the concurrency bound. Each holds
/// one file open, so this bounds the store's open files at five times `max_concurrency`; a large
/// batch is what makes a sync cheap per save.
#[cfg(target_os = "linux")]
const STAGED_PER_PERMIT: usize = 4;

impl FsStorage {
    /// Opens the store at `base`, creating the directory if needed and removing temporary files
    /// that interrupted writes left behind.
    pub fn open(base: impl Into<PathBuf>) -> Result<Self, StorageError> {
        Self::open_with_concurrency(base, DEFAULT_MAX_CONCURRENCY)
    }

    /// Like [`open`](Self::open), running at most `max_concurrency` file operations at once
    /// (each holds at most one file open).
    pub fn open_with_concurrency(
        base: impl Into<PathBuf>,
        max_concurrency: usize,
    ) -> Result<Self, StorageError> {
        Self::open_with(base.into(), max_concurrency, true)
    }

    /// Opens the store; `unnamed` false makes it stage named files where it could stage unnamed
    /// ones (to test that path).
    fn open_with(
        base: PathBuf,
        max_concurrency: usize,
        unnamed: bool,
    ) -> Result<Self, StorageError> {
        let io_error = |source| StorageError::Io {
            key: StorageKey::new(Vec::<String>::new()),
            source,
        };
        let staging = Arc::new(Staging::open(base.join(STAGING_DIR), unnamed).map_err(io_error)?);
        #[cfg(target_os = "linux")]
        let committer = GroupCommitter::start(staging.clone()).map_err(io_error)?;
        // Semaphores refuse (panic on) more permits than MAX_PERMITS.
        let max_concurrency = max_concurrency.clamp(1, Semaphore::MAX_PERMITS / 8);
        Ok(FsStorage {
            inner: Arc::new(Inner {
                base,
                staging,
                permits: Semaphore::new(max_concurrency),
                #[cfg(target_os = "linux")]
                staged_slots: Arc::new(Semaphore::new(
                    max_concurrency.saturating_mul(STAGED_PER_PERMIT),
                )),
                #[cfg(target_os = "linux")]
                committer,
            }),
        })
    }

    /// The directory.
    pub fn base(&self) -> &Path {
        &self.inner.base
    }

    /// Runs blocking file work on tokio's blocking pool, within the concurrency bound.
    async fn run<T: Send + 'static>(
        &self,
        key: &StorageKey,
        work: impl FnOnce(&Inner) -> io::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| StorageError::Closed)?;
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || work(&inner))
            .await
            .unwrap_or_else(|join| {
                Err(io::Error::other(format!(
                    "file operation did not complete: {join}"
                )))
            });
        result.map_err(|source| StorageError::Io {
            key: key.clone(),
            source,
        })
    }

    fn path_of(&self, key: &StorageKey) -> Result<PathBuf, StorageError> {
        let components = layout::key_components(key).map_err(|reason| invalid(key, reason))?;
        Ok(layout::join(&self.inner.base, &components))
    }

    /// Where an existing key may be: as [`path_of`](Self::path_of), and also the top-level files
    /// of short keys JS wrote (`["a"]`, `["ab"]`), which we read and remove but never write.
    fn existing_path_of(&self, key: &StorageKey) -> Result<PathBuf, StorageError> {
        self.path_of(key)
            .or_else(|refused| match layout::prefix_path(key) {
                Ok(PrefixPath::ShortTopLevelFile(name)) => Ok(self.inner.base.join(name)),
                _ => Err(refused),
            })
    }
}

fn invalid(key: &StorageKey, reason: String) -> StorageError {
    StorageError::InvalidKey {
        key: key.clone(),
        reason,
    }
}

/// Whether an error means "nothing is stored there": the path is missing, or runs through a file
/// (a longer key below an existing key's file).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Reads a file; a missing file (or a directory standing where a key's file would be) is no value.
fn read_value(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if is_absent(&e) || path.is_dir() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every file below `dir`, with its components relative to `dir`, skipping `skip_top` at the top.
fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    skip_top: Option<&str>,
    out: &mut Vec<(Vec<String>, PathBuf)>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Missing (or removed by a concurrent remove_range): nothing there.
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!(path = ?entry.path(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if prefix.is_empty() && skip_top == Some(name.as_str()) {
            continue;
        }
        let file_type = entry.file_type()?;
        prefix.push(name);
        if file_type.is_dir() {
            walk(&entry.path(), prefix, None, out)?;
        } else if file_type.is_file() {
            out.push((prefix.clone(), entry.path()));
        }
        prefix.pop();
    }
    Ok(())
}

/// The keys and values of the files below `dir`, whose path below the base is `dir_components`.
fn load_tree(base: &Path, dir_components: &[String]) -> io::Result<Vec<(StorageKey, Vec<u8>)>> {
    let dir = layout::join(base, dir_components);
    if dir.is_file() {
        let key = layout::key_of_relative(dir_components);
        return Ok(key.zip(read_value(&dir)?).into_iter().collect());
    }
    let skip = dir_components.is_empty().then_some(STAGING_DIR);
    let mut files = Vec::new();
    walk(&dir, &mut dir_components.to_vec(), skip, &mut files)?;
    let mut found = Vec::with_capacity(files.len());
    for (components, path) in files {
        let Some(key) = layout::key_of_relative(&components) else {
            continue;
        };
        // A file removed between listing and reading was removed by a concurrent remove: skip it.
        if let Some(value) = read_value(&path)? {
            found.push((key, value));
        }
    }
    Ok(found)
}

/// Removes a file or a whole directory. A directory is first moved into the staging directory,
/// out of every key's path, in one atomic rename, and deleted there: saves running meanwhile (in
/// this process or another) then make the path anew instead of adding files to a directory being
/// emptied, which made the removal fail. A save that lands after the rename survives it. What a
/// crash leaves in the staging directory is removed on open, like staged files.
fn remove_path(path: &Path, staging: &Staging) -> io::Result<()> {
    // A save may turn a missing path into a directory between the look and the removal: look
    // again, once or twice.
    for _ in 0..3 {
        match fs::symlink_metadata(path) {
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => return Err(e),
            Ok(metadata) if metadata.is_dir() => {
                let aside = staging.staged_name();
                match fs::rename(path, &aside) {
                    Err(e) if is_absent(&e) => return Ok(()),
                    Err(e) => return Err(e),
                    Ok(()) => {}
                }
                path.parent().map_or(Ok(()), sync_dir)?;
                return fs::remove_dir_all(&aside);
            }
            Ok(_) => match fs::remove_file(path) {
                Ok(()) => return path.parent().map_or(Ok(()), sync_dir),
                Err(e) if is_absent(&e) => return Ok(()),
                Err(_) if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) => continue,
                Err(e) => return Err(e),
            },
        }
    }
    Err(io::Error::other(
        "the path kept changing between file and directory during its removal",
    ))
}

#[async_trait]
impl StorageAdapter for FsStorage {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.existing_path_of(key)?;
        self.run(key, move |_| read_value(&path)).await
    }

    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        #[cfg(target_os = "linux")]
        {
            // Saves bypass the operation permits: a few stager threads run them (see
            // `GroupCommitter`). A staged slot, held until the commit, bounds the saves in
            // flight and with them the files open.
            let slot = self
                .inner
                .staged_slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| StorageError::Closed)?;
            let committed = self.inner.committer.save(path, value, slot).await;
            committed.map_err(|source| StorageError::Io {
                key: key.clone(),
                source,
            })
        }
        #[cfg(not(target_os = "linux"))]
        self.run(key, move |inner| inner.staging.write(&path, &value))
            .await
    }

    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
        let path = self.existing_path_of(key)?;
        self.run(key, move |_| match fs::remove_file(&path) {
            Ok(()) => path.parent().map_or(Ok(()), sync_dir),
            Err(e) if is_absent(&e) || path.is_dir() => Ok(()),
            Err(e) => Err(e),
        })
        .await
    }

    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let target = layout::prefix_path(prefix).map_err(|reason| invalid(prefix, reason))?;
        self.run(prefix, move |inner| match target {
            PrefixPath::Everything => load_tree(&inner.base, &[]),
            PrefixPath::Nothing => Ok(Vec::new()),
            PrefixPath::ShortTopLevelFile(name) => {
                let path = inner.base.join(&name);
                Ok(if path.is_file() {
                    read_value(&path)?
                        .map(|v| (StorageKey::new([name]), v))
                        .into_iter()
                        .collect()
                } else {
                    Vec::new()
                })
            }
            // A prefix naming a file is that one key (NodeFS throws ENOTDIR here).
            PrefixPath::Components(components) => load_tree(&inner.base, &components),
        })
        .await
    }

    /// One blocking job instead of three; a document never stored here (a new one, or a find
    /// of one that is elsewhere) costs a single failed lookup of its directory.
    async fn load_document(
        &self,
        document_id: &DocumentId,
    ) -> Result<StoredDocument, StorageError> {
        let key = StorageKey::new([document_id.as_str()]);
        let directory = self.path_of(&key)?;
        let tombstone = self.path_of(&StorageKey::tombstone(document_id))?;
        let snapshots = layout::key_components(&ChunkKind::Snapshot.prefix(document_id))
            .map_err(|reason| invalid(&key, reason))?;
        let incrementals = layout::key_components(&ChunkKind::Incremental.prefix(document_id))
            .map_err(|reason| invalid(&key, reason))?;
        self.run(&key, move |inner| {
            if !directory.is_dir() {
                return Ok(StoredDocument::default());
            }
            if read_value(&tombstone)?.is_some() {
                return Ok(StoredDocument::deleted());
            }
            let mut chunks = load_tree(&inner.base, &snapshots)?;
            chunks.extend(load_tree(&inner.base, &incrementals)?);
            Ok(StoredDocument {
                deleted: false,
                chunks,
            })
        })
        .await
    }

    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
        let target = layout::prefix_path(prefix).map_err(|reason| invalid(prefix, reason))?;
        self.run(prefix, move |inner| match target {
            PrefixPath::Everything => {
                for entry in fs::read_dir(&inner.base)? {
                    let entry = entry?;
                    if entry.file_name() != STAGING_DIR {
                        remove_path(&entry.path(), &inner.staging)?;
                    }
                }
                Ok(())
            }
            PrefixPath::Nothing => Ok(()),
            PrefixPath::ShortTopLevelFile(name) => {
                let path = inner.base.join(name);
                if path.is_file() {
                    remove_path(&path, &inner.staging)?;
                }
                Ok(())
            }
            PrefixPath::Components(components) => {
                remove_path(&layout::join(&inner.base, &components), &inner.staging)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The suite in `tests/conformance.rs` runs with unnamed staging files where the system has
    /// them; this runs it with named ones, the path other filesystems take.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn named_staging_passes_the_conformance_suite() {
        let root = tempfile::tempdir().expect("temporary directory");
        let mut n = 0;
        tandem_core::storage::conformance::run_all(|| {
            n += 1;
            FsStorage::open_with(
                root.path().join(n.to_string()),
                DEFAULT_MAX_CONCURRENCY,
                false,
            )
            .expect("open")
        })
        .await;
        let staging = root.path().join("1").join(STAGING_DIR);
        assert_eq!(
            fs::read_dir(staging).expect("staging directory").count(),
            0,
            "every named staging file was renamed into place"
        );
    }
}
