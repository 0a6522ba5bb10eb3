//! # tandem-storage-fs
//!
//! [`FsStorage`]: file storage that swaps in for a directory written by automerge-repo's
//! `NodeFSStorageAdapter` (and by the JS sync server), and the other way round: the same key
//! lives at the same path (docs/protocol.md#nodefs-layout). What differs is safety:
//!
//! - **Atomic, durable writes.** A value is written to a staging file, made durable, given its
//!   key's name (a rename over the target, or a link for a new key), and the name is made durable
//!   before `save` returns. A reader never sees a half-written chunk, and a `save` that returned
//!   survives `kill -9` and power loss.
//!   - On Linux, a few stager threads write new values as unnamed files (`O_TMPFILE`) in their
//!     target's directory, and one committer thread group-commits them: one `syncfs` makes a
//!     batch's data durable before the batch is linked into place, and under load the same sync
//!     makes the previous batch's names durable. A crash leaves no staging file of a new key
//!     behind. An overwrite (a sync state, the storage id) is named in `<base>/.tandem-tmp/` for
//!     the moment before its rename, and so is every staged file where unnamed files cannot be
//!     made or linked (checked when the store opens).
//!   - Elsewhere each save fsyncs its own named staging file and directories.
//!   - Named staging files live outside every key's path, so neither tandem nor NodeFS ever loads
//!     one as a chunk; those left by a crash are removed on open.
//! - **Shared directories.** Several processes may use one directory: writes are whole-file
//!   renames, staging names are unique per process, and cleanup spares the files of live writers.
//! - **Bounded concurrency.** At most [`DEFAULT_MAX_CONCURRENCY`] file operations run at once
//!   (configurable), and at most four times as many saves wait for group commit (each holding
//!   its staged file open), so thousands of concurrent saves do not exhaust file handles.
//! - **Refused keys.** Key parts that cannot be a safe path component are refused with
//!   [`StorageError::InvalidKey`](tandem_core::StorageError::InvalidKey) rather than escaped,
//!   because an escaped key would live at a path NodeFS does not know (see the `layout` rules
//!   in [`FsStorage`]'s source): empty parts, `.`/`..`, separators, NUL, parts over 255 bytes,
//!   and first parts shorter than three characters.
//!
//! The server's default directory is [`DEFAULT_DATA_DIR`] (`./tandem-data`); NodeFS's is
//! `./automerge-repo-data`. Either can be opened.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tandem_core::{StorageAdapter, StorageKey};
//! use tandem_storage_fs::FsStorage;
//!
//! let dir = std::env::temp_dir().join(format!("tandem-doc-{}", std::process::id()));
//! let store = FsStorage::open(&dir)?;
//! let key = StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "00ff"]);
//! store.save(&key, b"chunk".to_vec()).await?;
//! assert!(dir.join("2k/GRUrX8w2KjaHC3xek1kijSVeee/snapshot/00ff").is_file());
//! assert_eq!(store.load(&key).await?, Some(b"chunk".to_vec()));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod atomic;
#[cfg(target_os = "linux")]
mod group_commit;
mod layout;
mod storage;
#[cfg(target_os = "linux")]
mod unnamed;

pub use storage::{FsStorage, DEFAULT_DATA_DIR, DEFAULT_MAX_CONCURRENCY};

/// Where a key lives on disk, for tools and for the fuzz target that checks the mapping.
pub mod paths {
    use tandem_core::StorageKey;

    /// The path components (below the base directory) `key` is stored at, or why it cannot be
    /// stored. No component is empty, `.`, `..`, or holds a separator or NUL.
    pub fn key_components(key: &StorageKey) -> Result<Vec<String>, String> {
        super::layout::key_components(key)
    }

    /// The key stored at `components` below the base directory (NodeFS's inverse mapping).
    pub fn key_at(components: &[String]) -> Option<StorageKey> {
        super::layout::key_of_relative(components)
    }
}
