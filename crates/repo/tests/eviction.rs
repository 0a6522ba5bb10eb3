//! Memory stays bounded: documents nobody holds are saved and unloaded after the idle time.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use futures::{Stream, StreamExt};
use tandem_repo::{Repo, RepoEvent};
use tandem_storage_mem::MemoryStorage;

/// Waits until every one of `ids` has left memory, as the repo's events tell.
async fn wait_for_unloads(
    events: &mut (impl Stream<Item = RepoEvent> + Unpin),
    ids: &[tandem_core::DocumentId],
) {
    let mut waiting: HashSet<_> = ids.iter().cloned().collect();
    tokio::time::timeout(PATIENCE, async {
        while !waiting.is_empty() {
            if let Some(RepoEvent::Unloaded(id)) = events.next().await {
                waiting.remove(&id);
            }
        }
    })
    .await
    .expect("documents were not unloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_documents_touched_once_are_unloaded_and_still_found() {
    let storage = MemoryStorage::new();
    let repo = Repo::builder()
        .storage(storage.clone())
        .save_debounce(Duration::from_millis(10))
        .idle_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut events = Box::pin(repo.events());
    let mut ids = Vec::new();
    for i in 0..10_000u32 {
        let (handle, ()) = repo
            .create_with(|tx| tx.put(ROOT, "n", i as i64).unwrap())
            .await
            .unwrap();
        ids.push(handle.document_id().clone());
    }
    // One handle is still held: it must stay.
    let kept = repo.find(&ids[0]).await.unwrap();
    // (The first may have gone and come back already: the others are what must go.)
    wait_for_unloads(&mut events, &ids[1..]).await;
    assert_eq!(repo.documents().await.unwrap(), vec![ids[0].clone()]);

    for (i, id) in ids.iter().enumerate().step_by(997) {
        let found = repo.find(id).await.unwrap();
        let n = found
            .with_doc(|d| d.get(ROOT, "n").unwrap().unwrap().0.as_i64())
            .unwrap();
        assert_eq!(n, Some(i as i64));
    }
    kept.change(|tx| tx.put(ROOT, "still", true).unwrap())
        .unwrap();
    repo.shutdown().await;
}

/// `Repo::evict` takes a held document out of memory at once, saving its last change first;
/// the held handle turns unloaded and a find loads the document again, change included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_document_is_saved_unloaded_and_found_again() {
    let repo = Repo::builder()
        .storage(MemoryStorage::new())
        .save_debounce(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let mut events = Box::pin(repo.events());
    let held = repo.create_empty().await.unwrap();
    held.change(|tx| tx.put(ROOT, "n", 7).unwrap()).unwrap();
    repo.evict(held.document_id()).await.unwrap();
    assert_eq!(held.state(), tandem_repo::HandleState::Unloaded);
    assert!(repo.documents().await.unwrap().is_empty());
    wait_for_unloads(&mut events, &[held.document_id().clone()]).await;

    let again = repo.find(held.document_id()).await.unwrap();
    let n = again
        .with_doc(|d| d.get(ROOT, "n").unwrap().unwrap().0.as_i64())
        .unwrap();
    assert_eq!(n, Some(7));
    // Evicting what is not in memory is nothing to wait for.
    repo.evict(tandem_core::DocumentId::random()).await.unwrap();
    repo.shutdown().await;
}
