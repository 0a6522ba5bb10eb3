//! The [`StorageAdapter`] trait: the repo's only view of persistence.

use async_trait::async_trait;

use super::{ChunkKind, StorageKey};
use crate::DocumentId;

/// A storage operation that failed. Adapters say which key and why; the repo decides whether to
/// retry, surface the error, or stop.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key cannot be stored by this adapter (for a file store: a part that is not a safe path
    /// component). Nothing was written.
    #[error("storage key {key:?} is not valid here: {reason}")]
    InvalidKey {
        /// The refused key.
        key: StorageKey,
        /// Why.
        reason: String,
    },
    /// The underlying medium failed.
    #[error("storage I/O failed for {key:?}: {source}")]
    Io {
        /// The key being read, written or removed (for range operations, the prefix).
        key: StorageKey,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The adapter has been closed.
    #[error("storage is closed")]
    Closed,
}

/// A key-value store whose only query is by key prefix.
///
/// The contract every implementation keeps (and the conformance suite checks, with the
/// `test-suite` feature):
/// - **Durable on return**: once `save` or `remove` returns `Ok`, the change survives a crash of
///   the process (and, for stores that claim it, of the machine).
/// - **Atomic values**: a reader, in this process or another, sees a value whole or not at all;
///   never a mix of old and new bytes.
/// - **Shared safely**: two processes may use one store at once; each sees the other's completed
///   writes on its next read. (Chunk names are content hashes, so concurrent writers of one key
///   write the same bytes.)
/// - **Prefix ranges**: `load_range(p)` and `remove_range(p)` act on every key whose first parts
///   equal the parts of `p`, for a prefix of any length; the empty prefix covers every key. A
///   prefix matches whole parts only: `["ab"]` does not cover `["abc"]`.
/// - Empty values are values; loading a missing key is `Ok(None)`; removing one is `Ok(())`.
#[async_trait]
pub trait StorageAdapter: Send + Sync + 'static {
    /// The value under `key`, if any.
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError>;

    /// Stores `value` under `key`, replacing what was there.
    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError>;

    /// Removes `key`.
    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError>;

    /// Every key starting with `prefix`, with its value, in no particular order.
    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError>;

    /// Removes every key starting with `prefix`.
    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError>;

    /// What storage holds of one document: whether it was deleted for good
    /// ([`StorageKey::tombstone`]), and its snapshot and incremental chunks (not its sync states,
    /// of which a shared document may have one per peer). Every document coming into memory asks
    /// this, so an adapter that can answer in one trip (one blocking job, one query) overrides
    /// it; the default reads the tombstone and then each chunk kind.
    async fn load_document(
        &self,
        document_id: &DocumentId,
    ) -> Result<StoredDocument, StorageError> {
        if self
            .load(&StorageKey::tombstone(document_id))
            .await?
            .is_some()
        {
            return Ok(StoredDocument::deleted());
        }
        let mut chunks = self
            .load_range(&ChunkKind::Snapshot.prefix(document_id))
            .await?;
        chunks.extend(
            self.load_range(&ChunkKind::Incremental.prefix(document_id))
                .await?,
        );
        Ok(StoredDocument {
            deleted: false,
            chunks,
        })
    }
}

/// What [`StorageAdapter::load_document`] read of a document.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// The document was deleted for good: its tombstone is stored, and `chunks` is empty.
    pub deleted: bool,
    /// Its snapshot and incremental chunks, in no particular order, for
    /// [`load_document`](crate::persistence::load_document).
    pub chunks: Vec<(StorageKey, Vec<u8>)>,
}

impl StoredDocument {
    /// A document deleted for good.
    pub fn deleted() -> Self {
        StoredDocument {
            deleted: true,
            chunks: Vec::new(),
        }
    }
}

/// Removes a document's chunks of every kind (as automerge-repo's `removeDoc` does). With
/// `tombstone`, the tombstone is written first and durably, so that a crash part way leaves the
/// document deleted rather than half there; the tombstone itself is never removed.
pub async fn remove_document<S: StorageAdapter + ?Sized>(
    storage: &S,
    document_id: &DocumentId,
    tombstone: bool,
) -> Result<(), StorageError> {
    if tombstone {
        storage
            .save(&StorageKey::tombstone(document_id), b"deleted".to_vec())
            .await?;
    }
    for kind in ChunkKind::ALL {
        storage.remove_range(&kind.prefix(document_id)).await?;
    }
    Ok(())
}
