//! Loading a document from its snapshot and incremental chunks.

use automerge::{Automerge, LoadOptions, OnPartialLoad, ReadDoc, VerificationMode};

use super::ChunkLedger;
use crate::untrusted::{apply_untrusted, guard, UntrustedError};
use crate::{ChunkKey, ChunkKind, DocumentId, StorageKey};

/// A chunk automerge could not read (truncated, torn by a non-atomic writer, not a chunk, or
/// one automerge panics on).
#[derive(Debug)]
pub struct CorruptChunk {
    /// Where it is stored.
    pub key: StorageKey,
    /// What automerge said.
    pub error: UntrustedError,
}

/// What storage held of a document.
#[derive(Debug)]
pub struct LoadedDocument {
    /// The document, if any chunk held at least one change.
    pub document: Option<Automerge>,
    /// The chunks that were merged into it, for later save decisions.
    pub ledger: ChunkLedger,
    /// Chunks that could not be read. They stay out of the ledger, so no compaction ever deletes
    /// them: a chunk that was not merged is never removed.
    pub corrupt: Vec<CorruptChunk>,
}

/// Builds a document from its chunks, as automerge-repo does: snapshots first, then incrementals
/// (any order within each; automerge holds changes back until their dependencies arrive).
///
/// Unlike automerge-repo, which loads one concatenation and fails whole on one bad chunk, each
/// chunk is loaded on its own, so one corrupt chunk costs only itself. Keys that are not snapshot
/// or incremental chunks of `document_id` are ignored.
pub fn load_document(
    document_id: &DocumentId,
    chunks: Vec<(StorageKey, Vec<u8>)>,
) -> LoadedDocument {
    let mut parsed: Vec<(ChunkKey, StorageKey, Vec<u8>)> = chunks
        .into_iter()
        .filter_map(|(key, bytes)| {
            let chunk = ChunkKey::parse(&key)?;
            let wanted = &chunk.document_id == document_id && chunk.kind != ChunkKind::SyncState;
            wanted.then_some((chunk, key, bytes))
        })
        .collect();
    // Snapshots first: they carry most of the history, so incrementals rarely wait on deps.
    parsed.sort_by_key(|(chunk, _, _)| chunk.kind != ChunkKind::Snapshot);

    let mut ledger = ChunkLedger::new(document_id.clone());
    let mut corrupt = Vec::new();
    // The common case, every chunk whole: one strict parse of the concatenation.
    let all: Vec<u8> = parsed
        .iter()
        .flat_map(|(_, _, bytes)| bytes.iter().copied())
        .collect();
    let document = match guard(|| strict_load(&all)) {
        Ok(Ok(document)) => {
            for (chunk, _, bytes) in &parsed {
                ledger.record_known(chunk.clone(), bytes.len());
            }
            document
        }
        // Something is broken: find what, chunk by chunk, and load the rest.
        Ok(Err(_)) | Err(_) => {
            let mut document = Automerge::new();
            for (chunk, key, bytes) in parsed {
                let loaded = guard(|| check_whole(&bytes))
                    .and_then(|checked| checked.map_err(UntrustedError::from))
                    .and_then(|()| {
                        // A chunk automerge panics on would spoil the document built so far.
                        apply_untrusted(&mut document, |doc| doc.load_incremental(&bytes))
                    });
                match loaded {
                    Ok(_) => ledger.record_known(chunk, bytes.len()),
                    // tandem-core does no logging; the driver logs what `corrupt` reports.
                    Err(error) => corrupt.push(CorruptChunk { key, error }),
                }
            }
            document
        }
    };
    if !document.get_missing_deps(&[]).is_empty() {
        // Some chunk holds changes whose dependencies no chunk had (another process compacted
        // between our two listings, say): they wait in automerge's queue, not in the document,
        // so a snapshot of the document would not hold them. Which chunk they came from is not
        // known here, so this process removes none of these chunks; a later load that merges
        // everything may.
        ledger = ChunkLedger::new(document_id.clone());
    }
    let heads = document.get_heads();
    let document = (!heads.is_empty()).then_some(document);
    ledger.set_saved_heads(heads);
    LoadedDocument {
        document,
        ledger,
        corrupt,
    }
}

/// Loads `bytes` refusing anything partial: `load_incremental` keeps what it could parse of a
/// torn chunk and says nothing, which would hide corruption.
fn strict_load(bytes: &[u8]) -> Result<Automerge, automerge::AutomergeError> {
    Automerge::load_with_options(
        bytes,
        LoadOptions::new()
            .on_partial_load(OnPartialLoad::Error)
            .verification_mode(VerificationMode::Check),
    )
}

/// Whether one chunk parses whole. Loaded alone, an incremental chunk usually lacks the changes it
/// depends on (they are in other chunks); that is not corruption, only a torn or foreign chunk is.
fn check_whole(bytes: &[u8]) -> Result<(), automerge::AutomergeError> {
    match strict_load(bytes) {
        Ok(_)
        | Err(automerge::AutomergeError::MissingDeps | automerge::AutomergeError::ChangeGraph(_)) => {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// What storage held of the document, once the driver has merged it into the document
/// ([`take_in_stored`]).
#[derive(Debug)]
pub struct Loaded {
    /// The chunks now in the document; `None` if reading failed or the stored document could not
    /// be merged (its chunks are then never compacted away).
    pub ledger: Option<ChunkLedger>,
    /// Whether storage held any of the document.
    pub found: bool,
    /// Whether storage holds the document's tombstone ([`StoredDocument::deleted`](crate::storage::StoredDocument::deleted)): it was
    /// deleted for good, and nothing is to bring it back.
    pub deleted: bool,
}

/// Merges what storage held into `document` (usually empty, still loading) and says what the
/// document actor needs to know ([`Loaded`]).
///
/// What memory holds goes into what storage held, not the other way: automerge rebuilds the
/// changes it merges, and a stored change another writer left may be one it cannot rebuild
/// ([`crate::untrusted`]). A stored document that cannot be merged gives no ledger, so no
/// compaction removes its chunks.
pub fn take_in_stored(document: &mut Automerge, loaded: LoadedDocument) -> Loaded {
    for chunk in &loaded.corrupt {
        tracing::warn!(key = ?chunk.key, error = %chunk.error, "skipping corrupt chunk");
    }
    let Some(mut stored) = loaded.document else {
        return Loaded {
            ledger: Some(loaded.ledger),
            found: false,
            deleted: false,
        };
    };
    stored.set_actor(document.get_actor().clone());
    let taken = document.get_heads().is_empty()
        || apply_untrusted(&mut stored, |s| s.merge(document).map(drop)).is_ok();
    let merged = if taken {
        *document = stored;
        true
    } else {
        match apply_untrusted(document, |d| d.merge(&mut stored).map(drop)) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "stored document could not be merged");
                false
            }
        }
    };
    Loaded {
        ledger: merged.then_some(loaded.ledger),
        found: true,
        deleted: false,
    }
}
