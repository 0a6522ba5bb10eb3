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
}

/// A document's snapshot and incremental chunks, for
/// [`load_document`](crate::persistence::load_document) (whole-document work, which the caller
/// runs where it likes).
pub async fn read_document_chunks<S: StorageAdapter + ?Sized>(
    storage: &S,
    document_id: &DocumentId,
) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
    let mut chunks = storage
        .load_range(&ChunkKind::Snapshot.prefix(document_id))
        .await?;
    chunks.extend(
        storage
            .load_range(&ChunkKind::Incremental.prefix(document_id))
            .await?,
    );
    Ok(chunks)
}

/// Whether the document was deleted for good ([`StorageKey::tombstone`]).
pub async fn is_deleted<S: StorageAdapter + ?Sized>(
    storage: &S,
    document_id: &DocumentId,
) -> Result<bool, StorageError> {
    Ok(storage
        .load(&StorageKey::tombstone(document_id))
        .await?
        .is_some())
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
