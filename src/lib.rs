//! # tandem
//!
//! One dependency for applications: the vocabulary of [`tandem_core`] (re-exported at the root),
//! and, behind features that are on by default, the runtime and the adapters:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | `repo` | [`repo`] | `tandem-repo` |
//! | `storage-mem` | [`storage_mem`] | `tandem-storage-mem` |
//! | `storage-fs` | [`storage_fs`] | `tandem-storage-fs` |
//! | `net-ws` | [`net_ws`] | `tandem-net-ws` |
//!
//! ```
//! let url: tandem::AutomergeUrl = "automerge:2kGRUrX8w2KjaHC3xek1kijSVeee".parse()?;
//! assert_eq!(url.document_id().as_bytes().len(), 16);
//! # Ok::<(), tandem::InvalidUrl>(())
//! ```

#![warn(missing_docs)]

pub use tandem_core::*;

/// The `Repo` runtime (`tandem-repo`).
#[cfg(feature = "repo")]
pub use tandem_repo as repo;

#[cfg(feature = "repo")]
pub use tandem_repo::{
    AskOnly, DocHandle, FnSharePolicy, HandleState, Repo, RepoBuilder, RepoError, ShareAll,
    SharePolicy,
};

/// Transports: the [`NetworkAdapter`] vocabulary and, with the `repo` feature, the in-memory
/// links of [`network::memory`].
///
/// ```
/// # #[cfg(feature = "repo")] {
/// let (left, right, link) = tandem::network::memory::pair();
/// # drop((left, right, link)); }
/// ```
pub mod network {
    pub use tandem_core::network::*;
    #[cfg(feature = "repo")]
    pub use tandem_repo::network::memory;
}

/// In-memory storage (`tandem-storage-mem`).
#[cfg(feature = "storage-mem")]
pub use tandem_storage_mem as storage_mem;

/// File storage compatible with automerge-repo's NodeFS layout (`tandem-storage-fs`).
#[cfg(feature = "storage-fs")]
pub use tandem_storage_fs as storage_fs;

/// WebSocket adapters (`tandem-net-ws`).
#[cfg(feature = "net-ws")]
pub use tandem_net_ws as net_ws;

/// TCP and Unix-socket adapters (`tandem-net-tcp`).
#[cfg(feature = "net-tcp")]
pub use tandem_net_tcp as net_tcp;

/// The README's Rust example, compiled with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
