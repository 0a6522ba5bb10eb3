//! What a repo keeps in storage: across restarts, under compaction, despite corruption.

use std::time::Duration;

use crate::common::*;
use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use tandem_core::{ChunkKey, ChunkKind, StorageAdapter, StorageKey};
use tandem_repo::{HandleState, Repo};
use tandem_storage_mem::MemoryStorage;

fn chunks(storage: &MemoryStorage, kind: ChunkKind) -> Vec<(StorageKey, Vec<u8>)> {
    storage
        .snapshot()
        .into_iter()
        .filter(|(key, _)| ChunkKey::parse(key).is_some_and(|c| c.kind == kind))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_edits_and_sync_states_survive_a_restart() {
    let storage = MemoryStorage::new();
    let peer_storage = MemoryStorage::new();
    let build = |s: &MemoryStorage, name: &str| {
        Repo::builder()
            .peer_id(name.to_string())
            .storage(s.clone())
            .save_debounce(Duration::from_millis(5))
    };
    let (a, b, _link) = connected(build(&storage, "a"), build(&peer_storage, "b")).await;
    let storage_id = a.storage_id().cloned().unwrap();
    let doc = a.create_empty().await.unwrap();
    doc.change(|tx| tx.put(ROOT, "kept", "yes").unwrap())
        .unwrap();
    let at_b = b.find(doc.url()).await.unwrap();
    wait_for_heads(&at_b, &doc.heads().unwrap()).await;
    let heads = doc.heads().unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    a.shutdown().await;
    b.shutdown().await;

    // B kept a sync state for A's storage, under A's storage id.
    let sync_key = ChunkKey::sync_state(doc.document_id().clone(), &storage_id).to_storage_key();
    let stored_state = peer_storage
        .load(&sync_key)
        .await
        .unwrap()
        .expect("sync state saved");
    let state = automerge::sync::State::decode(&stored_state).unwrap();
    assert_eq!(state.shared_heads, heads);

    // Second lifetime: same storage, same storage id, the document is there without any peer.
    let again = build(&storage, "a").start().await.unwrap();
    assert_eq!(again.storage_id(), Some(&storage_id));
    let reloaded = again.find(doc.url()).await.unwrap();
    assert_eq!(reloaded.heads().unwrap(), heads);
    let kept = reloaded
        .with_doc(|d| d.get(ROOT, "kept").unwrap().map(|(v, _)| v.to_string()))
        .unwrap();
    assert_eq!(kept.as_deref(), Some("\"yes\""));
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_resumes_from_its_stored_sync_state() {
    let storage_a = MemoryStorage::new();
    let storage_b = MemoryStorage::new();
    let build = |s: &MemoryStorage, name: &str| {
        Repo::builder()
            .peer_id(name.to_string())
            .storage(s.clone())
            .save_debounce(Duration::from_millis(5))
    };
    let (a, b, _link) = connected(build(&storage_a, "a"), build(&storage_b, "b")).await;
    let doc = a.create_empty().await.unwrap();
    for i in 0..50 {
        doc.change(|tx| tx.put(ROOT, format!("k{i}"), i).unwrap())
            .unwrap();
    }
    let at_b = b.find(doc.url()).await.unwrap();
    wait_for_heads(&at_b, &doc.heads().unwrap()).await;
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    a.shutdown().await;
    b.shutdown().await;

    let (a, b, _link) = connected(build(&storage_a, "a"), build(&storage_b, "b")).await;
    let doc = a.find(doc.url()).await.unwrap();
    doc.change(|tx| tx.put(ROOT, "after", 1).unwrap()).unwrap();
    let at_b = b.find(doc.url()).await.unwrap();
    wait_for_heads(&at_b, &doc.heads().unwrap()).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_changes_compact_into_one_snapshot_and_few_incrementals() {
    let storage = MemoryStorage::new();
    let repo = Repo::builder()
        .storage(storage.clone())
        .save_debounce(Duration::from_millis(1))
        .start()
        .await
        .unwrap();
    let doc = repo.create_empty().await.unwrap();
    for i in 0..1000 {
        doc.change(|tx| tx.put(ROOT, format!("key-{}", i % 50), i).unwrap())
            .unwrap();
        if i % 10 == 0 {
            // Let saves happen in between, as they would in a live application.
            repo.flush().await.unwrap();
        }
    }
    repo.flush().await.unwrap();
    let heads = doc.heads().unwrap();
    repo.shutdown().await;

    let snapshots = chunks(&storage, ChunkKind::Snapshot);
    let incrementals = chunks(&storage, ChunkKind::Incremental);
    assert_eq!(snapshots.len(), 1, "compaction leaves one snapshot");
    let snapshot_bytes = snapshots[0].1.len();
    let incremental_bytes: usize = incrementals.iter().map(|(_, v)| v.len()).sum();
    // Compaction runs once the incrementals reach the snapshot's size, so at most one save's
    // worth lies beyond it.
    let largest = incrementals.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    assert!(
        incremental_bytes - largest < snapshot_bytes,
        "incrementals ({incremental_bytes} B in {}) outgrew the snapshot ({snapshot_bytes} B)",
        incrementals.len()
    );
    assert!(
        incrementals.len() <= 20,
        "{} incrementals",
        incrementals.len()
    );

    let again = Repo::builder()
        .storage(storage.clone())
        .start()
        .await
        .unwrap();
    let reloaded = again.find(doc.url()).await.unwrap();
    assert_eq!(reloaded.heads().unwrap(), heads);
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_chunk_is_skipped_and_the_rest_loads() {
    let storage = MemoryStorage::new();
    let repo = Repo::builder()
        .storage(storage.clone())
        .save_debounce(Duration::from_millis(1))
        .start()
        .await
        .unwrap();
    let doc = repo.create_empty().await.unwrap();
    doc.change(|tx| tx.put(ROOT, "first", 1).unwrap()).unwrap();
    repo.flush().await.unwrap();
    let heads_before = doc.heads().unwrap();
    repo.shutdown().await;
    // A torn chunk next to the good snapshot.
    let torn = ChunkKey::incremental(doc.document_id().clone(), b"torn").to_storage_key();
    storage
        .save(&torn, vec![0x85, 0x6f, 0x4a, 0x83, 0x01])
        .await
        .unwrap();

    let again = Repo::builder()
        .storage(storage.clone())
        .start()
        .await
        .unwrap();
    let reloaded = again.find(doc.url()).await.unwrap();
    assert_eq!(reloaded.heads().unwrap(), heads_before);
    reloaded
        .change(|tx| tx.put(ROOT, "second", 2).unwrap())
        .unwrap();
    again.flush().await.unwrap();
    again.shutdown().await;
    // The corrupt chunk was never merged, so compaction did not delete it.
    assert!(storage.load(&torn).await.unwrap().is_some());
}

/// Another writer of the store (a JS process, whose automerge has the same flaw) put a change
/// beside our snapshot that automerge takes but cannot snapshot (see
/// `crates/core/tests/fixtures/untrusted`). The repo's saves must keep every chunk and stay
/// loadable: a compaction here would replace them with a snapshot that does not load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_cannot_be_snapshotted_keeps_its_chunks_and_its_edits() {
    let storage = MemoryStorage::new();
    let repo = Repo::builder()
        .storage(storage.clone())
        .save_debounce(Duration::from_millis(1))
        .start()
        .await
        .unwrap();
    let doc = repo.create_empty().await.unwrap();
    doc.change(|tx| tx.put(ROOT, "first", 1).unwrap()).unwrap();
    repo.flush().await.unwrap();
    repo.shutdown().await;
    let unwritable: &[u8] = include_bytes!("../../core/tests/fixtures/untrusted/unwritable.change");
    let foreign = ChunkKey::incremental(doc.document_id().clone(), unwritable).to_storage_key();
    storage.save(&foreign, unwritable.to_vec()).await.unwrap();
    let stored_before: Vec<StorageKey> = storage.snapshot().into_iter().map(|(k, _)| k).collect();

    let again = Repo::builder()
        .storage(storage.clone())
        .save_debounce(Duration::from_millis(1))
        .start()
        .await
        .unwrap();
    let reloaded = again.find(doc.url()).await.unwrap();
    for round in 0..3 {
        reloaded
            .change(|tx| tx.put(ROOT, "round", round).unwrap())
            .unwrap();
        again.flush().await.unwrap();
    }
    let heads = reloaded.heads().unwrap();
    again.shutdown().await;
    let stored_after: Vec<StorageKey> = storage.snapshot().into_iter().map(|(k, _)| k).collect();
    for key in &stored_before {
        assert!(stored_after.contains(key), "{key:?} was removed");
    }

    let third = Repo::builder()
        .storage(storage.clone())
        .start()
        .await
        .unwrap();
    let loaded = third.find(doc.url()).await.unwrap();
    assert_eq!(loaded.heads().unwrap(), heads);
    let round = loaded
        .with_doc(|d| d.get(ROOT, "round").unwrap().unwrap().0.as_i64())
        .unwrap();
    assert_eq!(round, Some(2));
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_document_from_memory_and_storage() {
    let storage = MemoryStorage::new();
    let repo = Repo::builder()
        .storage(storage.clone())
        .save_debounce(Duration::from_millis(1))
        .start()
        .await
        .unwrap();
    let doc = repo.create_empty().await.unwrap();
    repo.flush().await.unwrap();
    assert!(!storage.is_empty());
    repo.delete(doc.url()).await.unwrap();
    assert_eq!(doc.state(), HandleState::Deleted);
    let left: Vec<_> = storage
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&StorageKey::document(doc.document_id())))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(repo.find(doc.url()).await.is_err());
    repo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_export_and_clone() {
    let repo = Repo::builder().start().await.unwrap();
    let doc = repo
        .create_from(&serde_json::json!({"a": [1, 2, 3]}))
        .await
        .unwrap();
    let bytes = repo.export(doc.url()).await.unwrap();
    let imported = repo.import(&bytes).await.unwrap();
    assert_ne!(imported.document_id(), doc.document_id());
    assert_eq!(imported.heads().unwrap(), doc.heads().unwrap());
    let cloned = repo.clone_doc(&doc).await.unwrap();
    assert_eq!(cloned.heads().unwrap(), doc.heads().unwrap());
    // import_into merges into an existing id.
    let mut other = automerge::Automerge::load(&bytes).unwrap();
    let mut tx = other.transaction();
    tx.put(ROOT, "b", 2).unwrap();
    tx.commit();
    repo.import_into(doc.url(), &other.save()).await.unwrap();
    wait_for_heads(&doc, &other.get_heads()).await;
    repo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_does_not_fail_because_another_document_is_unavailable() {
    let repo = Repo::builder()
        .storage(MemoryStorage::new())
        .start()
        .await
        .unwrap();
    let doc = repo.create_empty().await.unwrap();
    assert!(repo.find(tandem_core::DocumentId::random()).await.is_err());
    repo.flush().await.unwrap();
    repo.flush_documents([doc.document_id().clone()])
        .await
        .unwrap();
    repo.shutdown().await;
}

/// A text of `changes` commits of 50 pseudo-random letters each (so that it does not compress
/// to nothing).
fn big_text(changes: usize) -> automerge::Automerge {
    let mut doc = automerge::AutoCommit::new();
    let text = doc
        .put_object(ROOT, "text", automerge::ObjType::Text)
        .unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..changes {
        let chunk: String = (0..50)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                char::from(b'a' + ((state >> 33) % 26) as u8)
            })
            .collect();
        doc.splice_text(&text, i * 50, 0, &chunk).unwrap();
        doc.commit();
    }
    doc.document().clone()
}

/// Big documents take the whole-document paths that hand the runtime thread's other tasks over
/// (`heavy_work.rs`; they only do on a multi-thread runtime): a load from storage, a peer's
/// whole document, a compaction's check, an import.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_documents_load_sync_compact_and_import_on_a_multi_thread_runtime() {
    let storage = MemoryStorage::new();
    let original = big_text(300);
    let saved = original.save();
    // Well over the size from which heavy_work hands the thread over (a kilobyte).
    assert!(saved.len() > 4 * 1024, "{} bytes", saved.len());
    let writer = Repo::builder()
        .storage(storage.clone())
        .start()
        .await
        .unwrap();
    let id = writer.import(&saved).await.unwrap().document_id().clone();
    writer.flush().await.unwrap();
    writer.shutdown().await;

    // The server loads it from storage; the client, which has nothing, receives it whole.
    let (server, client, _link) = connected(
        Repo::builder()
            .storage(storage.clone())
            .save_debounce(Duration::from_millis(1)),
        Repo::builder(),
    )
    .await;
    let at_client = client.find(id.clone()).await.unwrap();
    assert_eq!(at_client.heads().unwrap(), original.get_heads());
    let text = |doc: &automerge::Automerge| {
        let (_, text) = doc.get(ROOT, "text").unwrap().unwrap();
        doc.text(text).unwrap()
    };
    assert_eq!(at_client.with_doc(text).unwrap(), text(&original));

    // Edits until the server compacts: its snapshot is checked by loading it back, and the
    // chunks it replaces go.
    let at_server = server.find(id.clone()).await.unwrap();
    let first_snapshot = chunks(&storage, ChunkKind::Snapshot);
    assert_eq!(first_snapshot.len(), 1);
    let mut edits = 0;
    while chunks(&storage, ChunkKind::Snapshot) == first_snapshot {
        at_client
            .change(|tx| {
                let (_, text) = tx.get(ROOT, "text").unwrap().unwrap();
                tx.splice_text(&text, 0, 0, &"x".repeat(200)).unwrap();
            })
            .unwrap();
        wait_for_heads(&at_server, &at_client.heads().unwrap()).await;
        server.flush().await.unwrap();
        edits += 1;
        assert!(edits < 1_000, "the server never compacted");
    }
    let heads = at_client.heads().unwrap();
    assert_eq!(chunks(&storage, ChunkKind::Snapshot).len(), 1);
    server.shutdown().await;

    // What the compaction left loads whole, here through an import of the exported bytes.
    let again = Repo::builder()
        .storage(storage.clone())
        .start()
        .await
        .unwrap();
    let reloaded = again.find(id).await.unwrap();
    assert_eq!(reloaded.heads().unwrap(), heads);
    let exported = again.export(reloaded.url()).await.unwrap();
    let imported = again.import(&exported).await.unwrap();
    assert_eq!(
        imported.with_doc(text).unwrap(),
        at_client.with_doc(text).unwrap()
    );
    again.shutdown().await;
    client.shutdown().await;
}
