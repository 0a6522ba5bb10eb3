//! [`StorageKey`] and the repo's chunk vocabulary (docs/protocol.md#keys-and-chunk-names).

use std::fmt;

use automerge::ChangeHash;
use sha2::{Digest, Sha256};

use crate::{DocumentId, StorageId};

/// The one key outside any document: where a store keeps its own [`StorageId`].
pub const STORAGE_ADAPTER_ID: &str = "storage-adapter-id";
const SNAPSHOT: &str = "snapshot";
const INCREMENTAL: &str = "incremental";
const SYNC_STATE: &str = "sync-state";
const TOMBSTONE: &str = "tombstone";

/// A key of a [`StorageAdapter`](crate::StorageAdapter): a non-empty list of text parts.
///
/// Keys order part by part, so every key that starts with a prefix sits in one contiguous range.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey(Vec<String>);

impl StorageKey {
    /// A key from its parts.
    pub fn new<I, S>(parts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StorageKey(parts.into_iter().map(Into::into).collect())
    }

    /// `["storage-adapter-id"]`.
    pub fn storage_adapter_id() -> Self {
        StorageKey::new([STORAGE_ADAPTER_ID])
    }

    /// `[doc]`: the prefix of every chunk of a document.
    pub fn document(document_id: &DocumentId) -> Self {
        StorageKey::new([document_id.as_str()])
    }

    /// `[doc, "tombstone"]`: present when the document was deleted for good (its chunks
    /// removed, and nothing may bring it back). automerge-repo reads only the chunk kinds under
    /// a document, so it neither sees nor removes this key.
    pub fn tombstone(document_id: &DocumentId) -> Self {
        StorageKey::new([document_id.as_str(), TOMBSTONE])
    }

    /// The parts.
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// Whether the first parts of `self` are exactly the parts of `prefix` (the empty prefix
    /// matches every key).
    pub fn starts_with(&self, prefix: &StorageKey) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// `self` with one more part.
    pub fn child(&self, part: impl Into<String>) -> Self {
        let mut parts = self.0.clone();
        parts.push(part.into());
        StorageKey(parts)
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageKey({:?})", self.0)
    }
}

impl<S: Into<String>> FromIterator<S> for StorageKey {
    fn from_iter<I: IntoIterator<Item = S>>(parts: I) -> Self {
        StorageKey::new(parts)
    }
}

/// What kind of chunk a document key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkKind {
    /// A whole saved document, named by its heads hash.
    Snapshot,
    /// Changes since earlier chunks, named by the hash of its bytes.
    Incremental,
    /// The encoded sync state with one peer storage, named by that storage id.
    SyncState,
}

impl ChunkKind {
    /// Every kind.
    pub const ALL: [ChunkKind; 3] = [
        ChunkKind::Snapshot,
        ChunkKind::Incremental,
        ChunkKind::SyncState,
    ];

    /// The key part naming the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkKind::Snapshot => SNAPSHOT,
            ChunkKind::Incremental => INCREMENTAL,
            ChunkKind::SyncState => SYNC_STATE,
        }
    }

    /// `[doc, kind]`: the prefix under which all chunks of this kind of a document live.
    pub fn prefix(self, document_id: &DocumentId) -> StorageKey {
        StorageKey::document(document_id).child(self.as_str())
    }
}

/// A key of the form `[doc, kind, name]`, the shape of every document chunk.
///
/// Names are never checked against content on load (JS does not either); a name that does not
/// match is still a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    /// The document.
    pub document_id: DocumentId,
    /// Snapshot, incremental or sync state.
    pub kind: ChunkKind,
    /// Heads hash, content hash, or peer storage id.
    pub name: String,
}

impl ChunkKey {
    /// The snapshot key of a document saved at `heads`.
    pub fn snapshot(document_id: DocumentId, heads: &[ChangeHash]) -> Self {
        ChunkKey {
            document_id,
            kind: ChunkKind::Snapshot,
            name: heads_hash(heads),
        }
    }

    /// The key of an incremental chunk holding `bytes`.
    pub fn incremental(document_id: DocumentId, bytes: &[u8]) -> Self {
        ChunkKey {
            document_id,
            kind: ChunkKind::Incremental,
            name: content_hash(bytes),
        }
    }

    /// The key of our sync state with the peer storage `storage_id`.
    pub fn sync_state(document_id: DocumentId, storage_id: &StorageId) -> Self {
        ChunkKey {
            document_id,
            kind: ChunkKind::SyncState,
            name: storage_id.to_string(),
        }
    }

    /// Reads `[doc, kind, name]`; any other shape, an unknown kind or an invalid document id gives
    /// `None`.
    pub fn parse(key: &StorageKey) -> Option<Self> {
        let [document_id, kind, name] = key.parts() else {
            return None;
        };
        let kind = match kind.as_str() {
            SNAPSHOT => ChunkKind::Snapshot,
            INCREMENTAL => ChunkKind::Incremental,
            SYNC_STATE => ChunkKind::SyncState,
            _ => return None,
        };
        Some(ChunkKey {
            document_id: document_id.parse().ok()?,
            kind,
            name: name.clone(),
        })
    }

    /// The storage key.
    pub fn to_storage_key(&self) -> StorageKey {
        self.kind.prefix(&self.document_id).child(self.name.clone())
    }
}

impl From<&ChunkKey> for StorageKey {
    fn from(key: &ChunkKey) -> Self {
        key.to_storage_key()
    }
}

impl From<ChunkKey> for StorageKey {
    fn from(key: ChunkKey) -> Self {
        key.to_storage_key()
    }
}

/// The name of a snapshot: SHA-256, as lowercase hex, of the heads' hex forms concatenated in
/// ascending order (automerge's order, so two peers with equal heads agree on the name).
pub fn heads_hash(heads: &[ChangeHash]) -> String {
    let mut sorted = heads.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for head in &sorted {
        hasher.update(hex::encode(head.0).as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The name of an incremental chunk: SHA-256 of its bytes, as lowercase hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
