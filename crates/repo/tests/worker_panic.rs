//! A document worker that panics (here: a storage adapter with a bug) must not leave handles
//! that look ready while nothing saves or syncs them, nor finds that wait forever; the rest of
//! the repo goes on.

use crate::common::*;
use automerge::transaction::Transactable;
use automerge::ROOT;
use tandem_core::sync::HandleState;
use tandem_core::DocumentId;
use tandem_repo::{HandleError, Repo, RepoError};
use tandem_storage_mem::testing::PanickingStorage;
use tandem_storage_mem::MemoryStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_find_whose_worker_panics_fails_and_the_repo_goes_on() {
    let poisoned = DocumentId::random();
    let repo = Repo::builder()
        .storage(PanickingStorage::new(
            MemoryStorage::new(),
            poisoned.clone(),
            true,
        ))
        .start()
        .await
        .unwrap();
    // Twice: the second find must not be handed the dead worker's handle either.
    for attempt in 0..2 {
        let found = tokio::time::timeout(PATIENCE, repo.find(&poisoned))
            .await
            .unwrap_or_else(|_| panic!("find {attempt} waited on a dead worker"));
        assert!(
            matches!(found, Err(RepoError::Unavailable(_))),
            "find {attempt}: {:?}",
            found.map(|h| h.state())
        );
    }
    let (doc, ()) = repo
        .create_with(|tx| tx.put(ROOT, "fine", true).unwrap())
        .await
        .unwrap();
    assert!(doc.change(|tx| tx.put(ROOT, "still", true)).is_ok());
    repo.flush().await.unwrap();
    repo.shutdown().await;
}

/// The worker of a ready document panics when a peer arrives (it reads the peer's stored sync
/// state): the handle's changes fail instead of vanishing unsaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_handle_whose_worker_panics_refuses_changes() {
    let stored = MemoryStorage::new();
    let maker = Repo::builder()
        .storage(stored.clone())
        .start()
        .await
        .unwrap();
    let (made, ()) = maker
        .create_with(|tx| tx.put(ROOT, "n", 1).unwrap())
        .await
        .unwrap();
    let id = made.document_id().clone();
    maker.shutdown().await;

    let flaky = PanickingStorage::new(stored, id.clone(), false);
    let a = Repo::builder()
        .storage(flaky.clone())
        .start()
        .await
        .unwrap();
    let handle = a.find(&id).await.unwrap();
    flaky.arm(true);
    // A peer with a storage id arrives: the worker reads its stored sync state, and panics.
    let b = Repo::builder()
        .storage(MemoryStorage::new())
        .start()
        .await
        .unwrap();
    let _link = link(&a, &b).await;
    let mut states = handle.states();
    tokio::time::timeout(
        PATIENCE,
        states.wait_for(|s| *s == HandleState::Unavailable),
    )
    .await
    .expect("the handle still looks ready")
    .unwrap();
    let refused = handle.change(|tx| tx.put(ROOT, "n", 2));
    assert!(
        matches!(refused, Err(HandleError::NotReady { .. })),
        "{refused:?}"
    );
    b.shutdown().await;
    a.shutdown().await;
}
