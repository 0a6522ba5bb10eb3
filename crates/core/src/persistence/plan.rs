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
    /// A compaction's snapshot did not load back ([`SavePlan::check_snapshot`]): the document
    /// holds a change automerge cannot snapshot, and every later snapshot would hold it too.
    /// Saves are incrementals from then on.
    snapshots_refused: bool,
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
}

impl SavePlan {
    /// Whether this plan may be carried out: a snapshot that replaces chunks must first load
    /// back at its heads. automerge 0.12 can hold changes (taken from another writer of the same
    /// storage, say) that it writes into a snapshot it cannot load; removing the chunks for such
    /// a snapshot would lose the document. On `Err`, write nothing, call
    /// [`ChunkLedger::refuse_snapshots`] and plan again. A plan that removes nothing passes
    /// unchecked (checking every first snapshot would cost a load per new document).
    ///
    /// This is a whole-document load: do it off any path that waits on it.
    pub fn check_snapshot(&self) -> Result<(), String> {
        if self.kind != ChunkKind::Snapshot || self.obsolete.is_empty() {
            return Ok(());
        }
        match guard(|| Automerge::load(&self.bytes)) {
            Ok(Ok(loaded)) if loaded.get_heads() == self.heads => Ok(()),
            Ok(Ok(_)) => Err("the snapshot loads at other heads".to_owned()),
            Ok(Err(error)) => Err(format!("the snapshot does not load: {error}")),
            Err(error) => Err(format!("the snapshot does not load: {error}")),
        }
    }
}

impl ChunkLedger {
    /// A document with nothing known in storage.
    pub fn new(document_id: DocumentId) -> Self {
        ChunkLedger {
            document_id,
            known: BTreeMap::new(),
            saved_heads: Vec::new(),
            snapshots_refused: false,
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

    /// What saving `document` now takes; `None` if storage already holds its heads. Check a
    /// snapshot with [`SavePlan::check_snapshot`] before carrying it out.
    pub fn plan_save(&self, document: &Automerge) -> Option<SavePlan> {
        let heads = document.get_heads();
        if heads == self.saved_heads || heads.is_empty() {
            return None;
        }
        let snapshot_bytes = self.total(ChunkKind::Snapshot);
        let incremental_bytes = self.total(ChunkKind::Incremental);
        if !self.snapshots_refused
            && should_compact(snapshot_bytes, incremental_bytes, !self.known.is_empty())
        {
            let key = ChunkKey::snapshot(self.document_id.clone(), &heads).to_storage_key();
            let obsolete = self.known.keys().filter(|k| **k != key).cloned().collect();
            Some(SavePlan {
                key,
                bytes: document.save(),
                kind: ChunkKind::Snapshot,
                heads,
                obsolete,
            })
        } else {
            let bytes = document.save_after(&self.saved_heads);
            let key = ChunkKey::incremental(self.document_id.clone(), &bytes).to_storage_key();
            Some(SavePlan {
                key,
                bytes,
                kind: ChunkKind::Incremental,
                heads,
                obsolete: Vec::new(),
            })
        }
    }

    /// A snapshot of this document failed [`SavePlan::check_snapshot`]: plan only incrementals
    /// from now on, removing nothing.
    pub fn refuse_snapshots(&mut self) {
        self.snapshots_refused = true;
    }

    /// Records a plan that was carried out: its chunk is known, its obsolete chunks are gone.
    pub fn record_saved(&mut self, plan: &SavePlan) {
        for key in &plan.obsolete {
            self.known.remove(key);
        }
        self.known
            .insert(plan.key.clone(), (plan.kind, plan.bytes.len()));
        self.saved_heads = plan.heads.clone();
    }
}
