//! `Repo::events`: documents coming into memory, turning unavailable, deleted, leaving memory.

use std::time::Duration;

use crate::common::*;
use futures::{Stream, StreamExt};
use tandem_core::DocumentId;
use tandem_repo::{Repo, RepoError, RepoEvent};
use tandem_storage_mem::MemoryStorage;

async fn next(events: &mut (impl Stream<Item = RepoEvent> + Unpin)) -> RepoEvent {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("no event")
        .expect("the repo's events ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_is_added_deleted_and_unloaded_and_a_missing_one_is_unavailable() {
    let repo = Repo::builder()
        .storage(MemoryStorage::new())
        .start()
        .await
        .unwrap();
    let mut events = Box::pin(repo.events());

    let handle = repo.create_empty().await.unwrap();
    let id = handle.document_id().clone();
    assert_eq!(next(&mut events).await, RepoEvent::Added(id.clone()));
    repo.delete(&id).await.unwrap();
    assert_eq!(next(&mut events).await, RepoEvent::Deleted(id.clone()));
    assert_eq!(next(&mut events).await, RepoEvent::Unloaded(id));

    let missing = DocumentId::random();
    assert!(matches!(
        repo.find(&missing).await,
        Err(RepoError::Unavailable(_))
    ));
    assert_eq!(next(&mut events).await, RepoEvent::Added(missing.clone()));
    assert_eq!(next(&mut events).await, RepoEvent::Unavailable(missing));
    repo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_a_peer_asks_for_is_added_and_one_left_idle_is_unloaded() {
    let (owner, asker, _link) = connected(
        Repo::builder()
            .storage(MemoryStorage::new())
            .idle_timeout(Duration::from_millis(100)),
        Repo::builder(),
    )
    .await;
    let mut events = Box::pin(owner.events());
    let id = {
        let handle = asker.create_empty().await.unwrap();
        handle.document_id().clone()
    };
    // Pushed by the asker's repo, which announces everything: the owner takes it in, and
    // unloads it once idle.
    assert_eq!(next(&mut events).await, RepoEvent::Added(id.clone()));
    assert_eq!(next(&mut events).await, RepoEvent::Unloaded(id));
    owner.shutdown().await;
    asker.shutdown().await;
}
