//! Changes automerge 0.12 panics on, or takes and cannot write back, leave a document as it was,
//! whether they come in a sync message, a stored chunk or an import (fixtures and how they were
//! made: `tests/fixtures/untrusted/README.md`).

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use automerge::sync::{ChunkList, Message as AmMessage, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ReadDoc, ROOT};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tandem_core::persistence::load_document;
use tandem_core::sync::{DocumentSync, HandleState, SyncError};
use tandem_core::untrusted::{apply_untrusted, UntrustedError};
use tandem_core::{ChunkKey, DocumentId, PeerId, PeerMetadata};

fn change(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/untrusted")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A document of our own, with some history, to spoil.
fn ours() -> Automerge {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "title", "ours").unwrap();
    let list = tx
        .put_object(ROOT, "items", automerge::ObjType::List)
        .unwrap();
    for i in 0..5 {
        tx.insert(&list, i, i as i64).unwrap();
    }
    tx.commit();
    doc
}

/// What a document says about itself: heads, and its content as JSON-ish debug text.
fn state(doc: &Automerge) -> (Vec<ChangeHash>, String) {
    let items = doc.get(ROOT, "items").unwrap().map(|(_, id)| id).unwrap();
    let values: Vec<String> = (0..doc.length(&items))
        .map(|i| format!("{:?}", doc.get(&items, i).unwrap().unwrap().0))
        .collect();
    let title = format!("{:?}", doc.get(ROOT, "title").unwrap().unwrap().0);
    (doc.get_heads(), format!("{title} {values:?}"))
}

fn reloads_as_itself(doc: &Automerge) -> bool {
    matches!(
        panic::catch_unwind(AssertUnwindSafe(|| Automerge::load(&doc.save()))),
        Ok(Ok(reloaded)) if reloaded.get_heads() == doc.get_heads()
    )
}

/// The premise: automerge alone does what the fixtures say. Without it the other tests would
/// pass whatever we did.
#[test]
fn automerge_alone_panics_on_one_and_cannot_write_back_the_other() {
    let mut doc = ours();
    let bad = change("panics.change");
    assert!(
        panic::catch_unwind(AssertUnwindSafe(|| doc.load_incremental(&bad))).is_err(),
        "automerge no longer panics on panics.change: the fixture needs renewing"
    );

    let mut doc = ours();
    doc.load_incremental(&change("unwritable.change"))
        .expect("automerge takes unwritable.change");
    assert!(
        !reloads_as_itself(&doc),
        "a document holding unwritable.change reloads: the fixture needs renewing"
    );

    let mut doc = ours();
    doc.load_incremental(&change("original.change")).unwrap();
    assert!(reloads_as_itself(&doc));
}

#[test]
fn applied_untrusted_they_leave_the_document_as_it_was() {
    for name in ["panics.change", "unwritable.change"] {
        let mut doc = ours();
        let before = state(&doc);
        let bytes = change(name);
        let error = apply_untrusted(&mut doc, |d| d.load_incremental(&bytes)).expect_err(name);
        // Writing an unwritable change back may itself panic in automerge; either way it is out.
        assert!(
            matches!(
                error,
                UntrustedError::Panicked(_) | UntrustedError::Unwritable(_)
            ),
            "{name}: {error}"
        );
        assert_eq!(state(&doc), before, "{name}");
        assert!(reloads_as_itself(&doc), "{name}");
        // And the document goes on taking good changes.
        apply_untrusted(&mut doc, |d| d.load_incremental(&change("original.change"))).unwrap();
        assert!(reloads_as_itself(&doc));
    }
    // An empty document too (automerge loads into a fresh one then).
    let mut empty = Automerge::new();
    let bytes = change("panics.change");
    assert!(apply_untrusted(&mut empty, |d| d.load_incremental(&bytes)).is_err());
    assert!(empty.get_heads().is_empty());
}

fn sync_carrying(bytes: Vec<u8>) -> Vec<u8> {
    let hash = automerge::Change::from_bytes(bytes.clone())
        .expect("the fixture parses as a change")
        .hash();
    AmMessage {
        heads: vec![hash],
        need: Vec::new(),
        have: Vec::new(),
        changes: ChunkList::from(vec![bytes]),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode()
}

#[test]
fn a_sync_message_carrying_them_is_refused_and_the_document_syncs_on() {
    let id = DocumentId::random();
    let metadata = PeerMetadata::default();
    let (mallory, alice) = (PeerId::from("mallory"), PeerId::from("alice"));
    for name in ["panics.change", "unwritable.change"] {
        let mut doc = ours();
        let before = state(&doc);
        let mut sync = DocumentSync::new(id.clone(), PeerId::from("server"), HandleState::Ready);
        let data = sync_carrying(change(name));
        let result = sync.receive_sync(&mut doc, &mallory, &metadata, None, &data, false);
        assert!(
            matches!(
                result,
                Err(SyncError::Apply(
                    UntrustedError::Panicked(_) | UntrustedError::Unwritable(_)
                ))
            ),
            "{name}: {result:?}"
        );
        assert_eq!(state(&doc), before, "{name}");

        // An honest peer's changes still apply and go out.
        let data = sync_carrying(change("original.change"));
        let out = sync
            .receive_sync(&mut doc, &alice, &metadata, None, &data, false)
            .expect("an honest change applies");
        assert!(out.document_changed, "{name}");
        assert!(reloads_as_itself(&doc), "{name}");
    }
}

#[test]
fn a_stored_chunk_automerge_panics_on_is_corrupt_and_the_rest_loads() {
    let id = DocumentId::random();
    let doc = ours();
    let snapshot = doc.save();
    let bad = change("panics.change");
    let chunks = vec![
        (
            ChunkKey::snapshot(id.clone(), &doc.get_heads()).to_storage_key(),
            snapshot,
        ),
        (
            ChunkKey::incremental(id.clone(), &bad).to_storage_key(),
            bad.clone(),
        ),
    ];
    let loaded = load_document(&id, chunks);
    assert_eq!(loaded.corrupt.len(), 1);
    assert_eq!(
        loaded.corrupt[0].key,
        ChunkKey::incremental(id.clone(), &bad).to_storage_key()
    );
    let document = loaded.document.expect("the snapshot loads");
    assert_eq!(state(&document), state(&doc));
    // The corrupt chunk is not the ledger's to compact away.
    assert_eq!(loaded.ledger.known_chunks().count(), 1);
}

/// Another writer of the same storage (a JS process, whose automerge has the same flaw) stored
/// an unwritable change beside our snapshot. Whatever loading makes of it, the next save must
/// not trade the chunks for a snapshot that does not load.
#[test]
fn a_compaction_never_trades_chunks_for_a_snapshot_that_does_not_load() {
    let id = DocumentId::random();
    let doc = ours();
    let bad = change("unwritable.change");
    let mut store: std::collections::BTreeMap<tandem_core::StorageKey, Vec<u8>> = [
        (
            ChunkKey::snapshot(id.clone(), &doc.get_heads()).to_storage_key(),
            doc.save(),
        ),
        (
            ChunkKey::incremental(id.clone(), &bad).to_storage_key(),
            bad.clone(),
        ),
    ]
    .into_iter()
    .collect();
    let loaded = load_document(&id, store.clone().into_iter().collect());
    let mut ledger = loaded.ledger;
    let mut document = loaded.document.expect("our snapshot loads");
    // automerge loads the two chunks together without complaint (and the check per change runs
    // only on a peer's changes, not on every load: it would double the cost of loading).
    assert!(loaded.corrupt.is_empty(), "premise: the bad change loads");

    // A few local edits, each saved as the repo would: write, then remove what it obsoletes.
    for round in 0..4 {
        let mut tx = document.transaction();
        tx.put(ROOT, "round", round).unwrap();
        tx.commit();
        let plan = checked_plan(&mut ledger, &document);
        assert!(
            plan.obsolete.is_empty(),
            "round {round}: a compaction of a document that cannot be snapshotted"
        );
        store.insert(plan.key.clone(), plan.bytes.clone());
        for key in &plan.obsolete {
            store.remove(key);
        }
        ledger.record_saved(&plan);
    }
    // Everything made here is still there.
    let reloaded = load_document(&id, store.into_iter().collect())
        .document
        .expect("the document loads");
    assert_eq!(state(&reloaded).1, state(&doc).1);
    assert_eq!(
        reloaded.get(ROOT, "round").unwrap().unwrap().0.as_i64(),
        Some(3)
    );
}

/// What a hostile peer can send: `change` with bits flipped after its checksum, and the checksum
/// made right again (the first four bytes of the SHA-256 of the chunk from its type byte on), so
/// that automerge gets past it to the change itself.
fn tampered(change: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
    let mut bytes = change.to_vec();
    for (at, bit) in flips {
        let at = 8 + at % (bytes.len() - 8);
        bytes[at] ^= 1 << (bit % 8);
    }
    let checksum = Sha256::digest(&bytes[8..]);
    bytes[4..8].copy_from_slice(&checksum[..4]);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever a peer makes of a change, applying it never panics; refused, it leaves the
    /// document as it was; taken, it can be stored and loaded back (as the incremental chunk a
    /// save writes after a snapshot taken before it).
    #[test]
    fn a_tampered_change_is_refused_cleanly_or_can_be_stored(
        flips in prop::collection::vec((0usize..1000, 0u8..8), 1..4)
    ) {
        let bytes = tampered(&change("original.change"), &flips);
        let mut doc = ours();
        let before = state(&doc);
        let snapshot = doc.save();
        match apply_untrusted(&mut doc, |d| d.load_incremental(&bytes)) {
            Err(_) => prop_assert_eq!(state(&doc), before),
            Ok(_) => {
                let mut stored = snapshot;
                stored.extend(doc.save_after(&before.0));
                let reloaded = Automerge::load(&stored);
                prop_assert!(
                    matches!(&reloaded, Ok(r) if r.get_heads() == doc.get_heads()),
                    "taken but does not load back: {:?}", reloaded.map(|r| r.get_heads())
                );
            }
        }
    }
}

/// What a repo's save does: plan, check a snapshot that replaces chunks, and on refusal plan
/// again without snapshots.
fn checked_plan(
    ledger: &mut tandem_core::persistence::ChunkLedger,
    document: &Automerge,
) -> tandem_core::persistence::SavePlan {
    let plan = ledger.plan_save(document).expect("new heads to save");
    if plan.check_snapshot().is_ok() {
        return plan;
    }
    ledger.refuse_snapshots();
    ledger.plan_save(document).expect("new heads to save")
}

/// Once a compaction is refused, later saves do not try again (each try is a save and a load of
/// the whole document, and a small document asks for a compaction on every save).
#[test]
fn a_refused_compaction_is_not_tried_again() {
    let id = DocumentId::random();
    let doc = ours();
    let bad = change("unwritable.change");
    let chunks = vec![
        (
            ChunkKey::snapshot(id.clone(), &doc.get_heads()).to_storage_key(),
            doc.save(),
        ),
        (
            ChunkKey::incremental(id.clone(), &bad).to_storage_key(),
            bad.clone(),
        ),
    ];
    let loaded = load_document(&id, chunks);
    let mut ledger = loaded.ledger;
    let mut document = loaded.document.expect("our snapshot loads");
    let mut refusals = 0;
    for round in 0..3 {
        let mut tx = document.transaction();
        tx.put(ROOT, "round", round).unwrap();
        tx.commit();
        let plan = ledger.plan_save(&document).expect("new heads to save");
        if plan.check_snapshot().is_err() {
            refusals += 1;
            ledger.refuse_snapshots();
            continue;
        }
        assert!(plan.obsolete.is_empty());
        ledger.record_saved(&plan);
    }
    assert_eq!(refusals, 1);
}

/// A chunk whose changes wait for dependencies no chunk holds (another process compacted between
/// the two listings of a load) is not the loader's to remove: a snapshot of what loaded would not
/// hold those changes.
#[test]
fn chunks_are_not_compacted_away_while_changes_wait_for_their_dependencies() {
    let id = DocumentId::random();
    let doc = ours();
    // A later change whose dependency (`ours`) is in no chunk of this store.
    let mut later = doc.fork();
    let mut tx = later.transaction();
    tx.put(ROOT, "later", true).unwrap();
    tx.commit();
    let waiting = later.save_after(&doc.get_heads());
    let mut other = Automerge::new();
    let mut tx = other.transaction();
    tx.put(ROOT, "title", "something else").unwrap();
    tx.commit();
    let chunks = vec![
        (
            ChunkKey::snapshot(id.clone(), &other.get_heads()).to_storage_key(),
            other.save(),
        ),
        (
            ChunkKey::incremental(id.clone(), &waiting).to_storage_key(),
            waiting.clone(),
        ),
    ];
    let loaded = load_document(&id, chunks);
    assert!(loaded.corrupt.is_empty());
    let mut document = loaded.document.expect("the snapshot loads");
    let mut tx = document.transaction();
    tx.put(ROOT, "here", 1).unwrap();
    tx.commit();
    let plan = loaded
        .ledger
        .plan_save(&document)
        .expect("new heads to save");
    let waiting_key = ChunkKey::incremental(id.clone(), &waiting).to_storage_key();
    assert!(
        !plan.obsolete.contains(&waiting_key),
        "the chunk with waiting changes would be removed"
    );
}
