//! Save decisions: one incremental chunk, or a compaction into one snapshot.

use automerge::{Automerge, ChangeHash};

use crate::untrusted::guard;
use crate::{ChunkKey, ChunkKind, DocumentId, StorageKey};

/// How far quick saves ([`ChunkLedger::plan_quick_save`]) let incrementals grow, as a multiple of
/// the snapshots (or of [`COMPACTION_FLOOR`], if larger), before one compacts anyway.
pub const QUICK_SAVE_GROWTH: usize = 4;

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
    known: KnownChunks,
    saved_heads: Vec<ChangeHash>,
    /// A compaction's snapshot did not load back ([`SavePlan::check_snapshot`]): the document
    /// holds a change automerge cannot snapshot, and every later snapshot would hold it too.
    /// Saves are incrementals from then on.
    snapshots_refused: bool,
    /// An incremental was written where the compaction rule asked for a snapshot
    /// ([`ChunkLedger::plan_quick_save`]): the next [`ChunkLedger::plan_save`] compacts even if
    /// nothing changed since.
    compaction_pending: bool,
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
    /// Whether [`check_snapshot`](Self::check_snapshot) has anything to check: a snapshot that
    /// replaces chunks. Other plans pass at once.
    pub fn needs_check(&self) -> bool {
        self.kind == ChunkKind::Snapshot && !self.obsolete.is_empty()
    }

    /// Whether this plan may be carried out: a snapshot that replaces chunks must first load
    /// back at its heads. automerge 0.12 can hold changes (taken from another writer of the same
    /// storage, say) that it writes into a snapshot it cannot load; removing the chunks for such
    /// a snapshot would lose the document. On `Err`, write nothing, call
    /// [`ChunkLedger::refuse_snapshots`] and plan again. A plan that removes nothing passes
    /// unchecked (checking every first snapshot would cost a load per new document).
    ///
    /// This is a whole-document load: do it off any path that waits on it.
    pub fn check_snapshot(&self) -> Result<(), String> {
        if !self.needs_check() {
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

/// The chunks known to hold a document, sorted by key, with their kinds and lengths. A sorted
/// vector rather than a map: a document has a few chunks, and every loaded document keeps its
/// ledger (a map's first node is 456 bytes, for usually one entry).
#[derive(Debug, Clone, Default)]
struct KnownChunks(Vec<(StorageKey, ChunkKind, usize)>);

impl KnownChunks {
    fn insert(&mut self, key: StorageKey, kind: ChunkKind, len: usize) {
        match self.0.binary_search_by(|(k, _, _)| k.cmp(&key)) {
            Ok(at) => self.0[at] = (key, kind, len),
            Err(at) => self.0.insert(at, (key, kind, len)),
        }
    }

    fn remove(&mut self, key: &StorageKey) {
        if let Ok(at) = self.0.binary_search_by(|(k, _, _)| k.cmp(key)) {
            self.0.remove(at);
        }
    }

    fn keys(&self) -> impl Iterator<Item = &StorageKey> {
        self.0.iter().map(|(key, _, _)| key)
    }

    fn values(&self) -> impl Iterator<Item = (ChunkKind, usize)> + '_ {
        self.0.iter().map(|(_, kind, len)| (*kind, *len))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ChunkLedger {
    /// A document with nothing known in storage.
    pub fn new(document_id: DocumentId) -> Self {
        ChunkLedger {
            document_id,
            known: KnownChunks::default(),
            saved_heads: Vec::new(),
            snapshots_refused: false,
            compaction_pending: false,
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
        self.known.insert(chunk.to_storage_key(), chunk.kind, len);
    }

    pub(super) fn set_saved_heads(&mut self, heads: Vec<ChangeHash>) {
        self.saved_heads = heads;
    }

    /// The bytes of every chunk known to hold the document.
    pub fn stored_bytes(&self) -> u64 {
        self.known
            .values()
            .filter(|(kind, _)| *kind != ChunkKind::SyncState)
            .map(|(_, len)| len as u64)
            .sum()
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
        let compact = self.wants_compaction();
        if heads.is_empty() || (heads == self.saved_heads && !(compact && self.compaction_pending))
        {
            return None;
        }
        if compact {
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
            Some(self.incremental(document, heads))
        }
    }

    /// A save that something waits on (a peer's acknowledgement): the changes since the last
    /// save as an incremental, the cheapest durable write, even where the compaction rule asks
    /// for a snapshot (a whole-document save, and a load to check it). The compaction is then
    /// pending: the next [`plan_save`](Self::plan_save), which a repo makes when saves go quiet,
    /// carries it out. A document's first save is still its snapshot, as automerge-repo writes.
    pub fn plan_quick_save(&self, document: &Automerge) -> Option<SavePlan> {
        let heads = document.get_heads();
        if heads.is_empty() || heads == self.saved_heads {
            return None;
        }
        let incremental_bytes = self.total(ChunkKind::Incremental);
        let snapshot_bytes = self.total(ChunkKind::Snapshot).max(COMPACTION_FLOOR);
        if self.known.is_empty() || incremental_bytes >= QUICK_SAVE_GROWTH * snapshot_bytes {
            // A first save, or a document written to without pause: compact now, so that its
            // chunks stay few (each compaction then covers several times a snapshot's worth).
            return self.plan_save(document);
        }
        Some(self.incremental(document, heads))
    }

    /// The changes since the last save, as one incremental chunk.
    fn incremental(&self, document: &Automerge, heads: Vec<ChangeHash>) -> SavePlan {
        let bytes = document.save_after(&self.saved_heads);
        let key = ChunkKey::incremental(self.document_id.clone(), &bytes).to_storage_key();
        SavePlan {
            key,
            bytes,
            kind: ChunkKind::Incremental,
            heads,
            obsolete: Vec::new(),
        }
    }

    /// Whether a compaction waits for the next [`plan_save`](Self::plan_save).
    pub fn compaction_pending(&self) -> bool {
        self.compaction_pending
    }

    fn wants_compaction(&self) -> bool {
        let snapshot_bytes = self.total(ChunkKind::Snapshot);
        let incremental_bytes = self.total(ChunkKind::Incremental);
        !self.snapshots_refused
            && should_compact(snapshot_bytes, incremental_bytes, !self.known.is_empty())
    }

    /// A snapshot of this document failed [`SavePlan::check_snapshot`]: plan only incrementals
    /// from now on, removing nothing.
    pub fn refuse_snapshots(&mut self) {
        self.snapshots_refused = true;
        self.compaction_pending = false;
    }

    /// Records a plan that was carried out: its chunk is known, its obsolete chunks are gone.
    pub fn record_saved(&mut self, plan: &SavePlan) {
        for key in &plan.obsolete {
            self.known.remove(key);
        }
        self.known
            .insert(plan.key.clone(), plan.kind, plan.bytes.len());
        self.saved_heads = plan.heads.clone();
        self.compaction_pending = match plan.kind {
            ChunkKind::Snapshot => false,
            _ => self.wants_compaction(),
        };
    }
}
