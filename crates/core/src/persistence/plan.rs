//! Save decisions: one incremental chunk, or a compaction into one snapshot.

use std::collections::BTreeMap;

use automerge::{Automerge, ChangeHash};

use crate::untrusted::guard;
use crate::{ChunkKey, ChunkKind, DocumentId, StorageKey};

/// Below this many snapshot bytes a document is always saved as a single snapshot (the value
/// automerge-repo uses, so both leave the same files for small documents).
pub const COMPACTION_FLOOR: usize = 1024;

/// automerge-repo's rule: compact when nothing is known yet, when the snapshots are small, or
/// when the incrementals have grown as large as the snapshots.
pub fn should_compact(
    snapshot_bytes: usize,
    incremental_bytes: usize,
    anything_known: bool,
) -> bool {
    !anything_known || snapshot_bytes < COMPACTION_FLOOR || incremental_bytes >= snapshot_bytes
}

/// What this process knows of one document's stored chunks: the ones it loaded or wrote, and
/// the heads they add up to.
///
/// Only known chunks are ever removed by compaction, and only once they have been merged into the
/// document being snapshotted. A chunk another process wrote meanwhile is unknown here and stays,
/// so two processes compacting one document lose nothing.
#[derive(Debug, Clone)]
pub struct ChunkLedger {
    document_id: DocumentId,
    known: BTreeMap<StorageKey, (ChunkKind, usize)>,
    saved_heads: Vec<ChangeHash>,
    /// A compaction's snapshot did not load back: the document holds a change automerge cannot
    /// snapshot, and every later snapshot would hold it too. Saves are incrementals from then on.
    snapshot_refused: bool,
}

/// What one save does. Perform it in order: write `key`, wait until the write is durable, then
/// remove `obsolete` (a crash in between leaves duplicate history, never lost history). Then
/// call [`ChunkLedger::record_saved`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavePlan {
    /// Where the new chunk goes.
    pub key: StorageKey,
    /// The chunk: a whole document (snapshot) or the changes since the last save (incremental).
    pub bytes: Vec<u8>,
    /// Snapshot or incremental.
    pub kind: ChunkKind,
    /// The document's heads once this chunk is stored.
    pub heads: Vec<ChangeHash>,
    /// Chunks the snapshot makes redundant (empty for an incremental).
    pub obsolete: Vec<StorageKey>,
    /// Why this is an incremental although the compaction rule asked for a snapshot: the
    /// snapshot did not load back as the document (see [`ChunkLedger::plan_save`]).
    pub snapshot_refused: Option<String>,
}

impl ChunkLedger {
    /// A document with nothing known in storage.
    pub fn new(document_id: DocumentId) -> Self {
        ChunkLedger {
            document_id,
            known: BTreeMap::new(),
            saved_heads: Vec::new(),
            snapshot_refused: false,
        }
    }

    /// The document.
    pub fn document_id(&self) -> &DocumentId {
        &self.document_id
    }

    /// The heads that storage holds, as far as this process knows.
    pub fn saved_heads(&self) -> &[ChangeHash] {
        &self.saved_heads
    }

    /// The known chunks.
    pub fn known_chunks(&self) -> impl Iterator<Item = &StorageKey> {
        self.known.keys()
    }

    pub(super) fn record_known(&mut self, chunk: ChunkKey, len: usize) {
        self.known.insert(chunk.to_storage_key(), (chunk.kind, len));
    }

    pub(super) fn set_saved_heads(&mut self, heads: Vec<ChangeHash>) {
        self.saved_heads = heads;
    }

    fn total(&self, kind: ChunkKind) -> usize {
        self.known
            .values()
            .filter(|(k, _)| *k == kind)
            .map(|(_, len)| len)
            .sum()
    }

    /// What saving `document` now takes; `None` if storage already holds its heads.
    ///
    /// A compaction that would remove chunks first loads its snapshot back and compares heads:
    /// automerge 0.12 can hold changes (taken from another writer of the same storage) that it
    /// writes into a snapshot it cannot load, and removing the chunks for such a snapshot would
    /// lose the document. Then the changes are saved as an incremental instead, nothing is
    /// removed, and once that plan is recorded this ledger plans only incrementals (any later
    /// snapshot would hold the same change). A first snapshot removes nothing and is not checked
    /// (that would cost a load per new document); a peer's changes have passed
    /// [`crate::untrusted`] before they get here.
    pub fn plan_save(&self, document: &Automerge) -> Option<SavePlan> {
        let heads = document.get_heads();
        if heads == self.saved_heads || heads.is_empty() {
            return None;
        }
        let snapshot_bytes = self.total(ChunkKind::Snapshot);
        let incremental_bytes = self.total(ChunkKind::Incremental);
        let mut snapshot_refused = None;
        if !self.snapshot_refused
            && should_compact(snapshot_bytes, incremental_bytes, !self.known.is_empty())
        {
            let key = ChunkKey::snapshot(self.document_id.clone(), &heads).to_storage_key();
            let obsolete: Vec<StorageKey> =
                self.known.keys().filter(|k| **k != key).cloned().collect();
            let bytes = document.save();
            let checked = match obsolete.is_empty() {
                true => Ok(()),
                false => loads_back(&bytes, &heads),
            };
            match checked {
                Ok(()) => {
                    return Some(SavePlan {
                        key,
                        bytes,
                        kind: ChunkKind::Snapshot,
                        heads,
                        obsolete,
                        snapshot_refused: None,
                    })
                }
                Err(why) => snapshot_refused = Some(why),
            }
        }
        let bytes = document.save_after(&self.saved_heads);
        let key = ChunkKey::incremental(self.document_id.clone(), &bytes).to_storage_key();
        Some(SavePlan {
            key,
            bytes,
            kind: ChunkKind::Incremental,
            heads,
            obsolete: Vec::new(),
            snapshot_refused,
        })
    }

    /// Records a plan that was carried out: its chunk is known, its obsolete chunks are gone.
    pub fn record_saved(&mut self, plan: &SavePlan) {
        self.snapshot_refused |= plan.snapshot_refused.is_some();
        for key in &plan.obsolete {
            self.known.remove(key);
        }
        self.known
            .insert(plan.key.clone(), (plan.kind, plan.bytes.len()));
        self.saved_heads = plan.heads.clone();
    }
}

/// Whether a snapshot loads back at `heads`; if not, why.
fn loads_back(snapshot: &[u8], heads: &[ChangeHash]) -> Result<(), String> {
    match guard(|| Automerge::load(snapshot)) {
        Ok(Ok(loaded)) if loaded.get_heads() == heads => Ok(()),
        Ok(Ok(_)) => Err("the snapshot loads at other heads".to_owned()),
        Ok(Err(error)) => Err(format!("the snapshot does not load: {error}")),
        Err(error) => Err(format!("the snapshot does not load: {error}")),
    }
}
