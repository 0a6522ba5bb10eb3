//! Keys as one text each, for stores ordered by text (SQLite, PostgreSQL): the parts joined by
//! the unit separator (U+001F), so that the keys under a prefix are one range of an ordered
//! index and a prefix load never scans the whole table.
//!
//! ```
//! use tandem_core::storage::text_key;
//! use tandem_core::StorageKey;
//!
//! let key = StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "00ff"]);
//! let stored = text_key::encode(&key)?;
//! assert_eq!(text_key::decode(&stored), key);
//!
//! let under = text_key::PrefixRange::of(&StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee"]))?;
//! assert!(under.contains(&stored));
//! # Ok::<(), tandem_core::StorageError>(())
//! ```

use super::{StorageError, StorageKey, StoredDocument};
use crate::{ChunkKind, DocumentId};

const SEPARATOR: char = '\u{1f}';
/// The character after [`SEPARATOR`]: keys under a prefix sort below `prefix + NEXT`.
const NEXT: char = '\u{20}';

/// The key as one text. Parts may not hold the separator or NUL (no repo key does; PostgreSQL
/// text cannot hold NUL at all).
pub fn encode(key: &StorageKey) -> Result<String, StorageError> {
    for part in key.parts() {
        if part.contains(SEPARATOR) || part.contains('\0') {
            return Err(StorageError::InvalidKey {
                key: key.clone(),
                reason: format!("a key part holds U+001F or NUL: {part:?}"),
            });
        }
    }
    Ok(key.parts().join(&SEPARATOR.to_string()))
}

/// The key back from its text.
pub fn decode(stored: &str) -> StorageKey {
    if stored.is_empty() {
        return StorageKey::new([""; 0]);
    }
    StorageKey::new(stored.split(SEPARATOR))
}

/// The texts a prefix matches: the key equal to the prefix, and every text from `from`
/// (inclusive) to `to` (exclusive), compared byte by byte (SQLite's default; `COLLATE "C"` in
/// PostgreSQL). The empty prefix matches every key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRange {
    /// The prefix itself, as a key.
    pub exact: String,
    /// The lowest text of a key under the prefix.
    pub from: String,
    /// The text every key under the prefix sorts below.
    pub to: String,
}

impl PrefixRange {
    /// The range of `prefix`.
    pub fn of(prefix: &StorageKey) -> Result<PrefixRange, StorageError> {
        let exact = encode(prefix)?;
        if prefix.parts().is_empty() {
            return Ok(PrefixRange {
                exact,
                from: String::new(),
                to: char::MAX.to_string(),
            });
        }
        Ok(PrefixRange {
            from: format!("{exact}{SEPARATOR}"),
            to: format!("{exact}{NEXT}"),
            exact,
        })
    }

    /// Whether the stored text `key` is under the prefix.
    pub fn contains(&self, key: &str) -> bool {
        key == self.exact || (key >= self.from.as_str() && key < self.to.as_str())
    }
}

/// What a store ordered by text needs to answer
/// [`load_document`](crate::StorageAdapter::load_document) in one query: the document's
/// tombstone key and the ranges of its snapshots and incrementals.
///
/// ```
/// use tandem_core::storage::text_key::DocumentQuery;
/// use tandem_core::DocumentId;
///
/// let id: DocumentId = "2kGRUrX8w2KjaHC3xek1kijSVeee".parse()?;
/// let query = DocumentQuery::of(&id)?;
/// // SELECT key, value … WHERE key = tombstone OR key IN snapshots OR key IN incrementals:
/// let rows = vec![(query.snapshots.from.clone() + "00ff", b"chunk".to_vec())];
/// let stored = query.stored(rows);
/// assert!(!stored.deleted);
/// assert_eq!(stored.chunks.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentQuery {
    /// The tombstone's key (for errors).
    pub tombstone_key: StorageKey,
    /// The tombstone's key as text.
    pub tombstone: String,
    /// The snapshots' keys.
    pub snapshots: PrefixRange,
    /// The incremental chunks' keys.
    pub incrementals: PrefixRange,
}

impl DocumentQuery {
    /// The query for `document_id`.
    pub fn of(document_id: &DocumentId) -> Result<DocumentQuery, StorageError> {
        let tombstone_key = StorageKey::tombstone(document_id);
        Ok(DocumentQuery {
            tombstone: encode(&tombstone_key)?,
            tombstone_key,
            snapshots: PrefixRange::of(&ChunkKind::Snapshot.prefix(document_id))?,
            incrementals: PrefixRange::of(&ChunkKind::Incremental.prefix(document_id))?,
        })
    }

    /// The document, from the rows (key text, value) the query returned.
    pub fn stored<K: AsRef<str>>(
        &self,
        rows: impl IntoIterator<Item = (K, Vec<u8>)>,
    ) -> StoredDocument {
        let mut stored = StoredDocument::default();
        for (key, value) in rows {
            if key.as_ref() == self.tombstone {
                return StoredDocument::deleted();
            }
            stored.chunks.push((decode(key.as_ref()), value));
        }
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_a_prefix_matches_whole_parts_only() {
        let key = StorageKey::new(["doc", "snapshot", "00ff"]);
        assert_eq!(decode(&encode(&key).unwrap()), key);
        let range = PrefixRange::of(&StorageKey::new(["doc"])).unwrap();
        assert!(range.contains(&encode(&key).unwrap()));
        assert!(range.contains("doc"));
        let longer_part = encode(&StorageKey::new(["docx", "snapshot"])).unwrap();
        assert!(!range.contains(&longer_part));
        assert!(encode(&StorageKey::new(["a\u{1f}b"])).is_err());
        assert!(encode(&StorageKey::new(["a\0b"])).is_err());
        assert!(PrefixRange::of(&StorageKey::new([""; 0]))
            .unwrap()
            .contains(&longer_part));
    }
}
