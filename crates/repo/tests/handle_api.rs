//! The handle's API, one way each: a view at heads is read-only, a change carries its message
//! and time, and every wait with a limit fails with the one `Timeout` error.

use std::time::Duration;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ReadDoc, ROOT};
use tandem_repo::{HandleError, HandleState, Repo, RepoError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_reads_the_document_at_its_heads_and_cannot_be_changed() {
    let repo = Repo::builder().start().await.unwrap();
    let handle = repo.create_empty().await.unwrap();
    handle.change(|tx| tx.put(ROOT, "n", 1)).unwrap().unwrap();
    let then = handle.heads().unwrap();
    handle.change(|tx| tx.put(ROOT, "n", 2)).unwrap().unwrap();

    let view = handle.view(&then).unwrap();
    let n = |h: &tandem_repo::DocHandle| {
        h.with_doc(|d| d.get(ROOT, "n").unwrap().unwrap().0.as_i64())
            .unwrap()
    };
    assert_eq!(n(&view), Some(1));
    assert_eq!(n(&handle), Some(2));
    assert_eq!(view.view_heads(), Some(then.as_slice()));
    assert!(matches!(
        view.change(|tx| tx.put(ROOT, "n", 3)),
        Err(HandleError::ReadOnly(_))
    ));
    // The same view through a URL with heads.
    let by_url = repo.find(view.url()).await.unwrap();
    assert_eq!(n(&by_url), Some(1));
    repo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_with_options_carries_its_message_and_time() {
    let repo = Repo::builder().start().await.unwrap();
    let handle = repo.create_empty().await.unwrap();
    // With a listener too: that path logs patches as it commits.
    let _listening = handle.changes();
    for (message, time) in [("first", 1_000), ("second", 2_000)] {
        let options = CommitOptions::default()
            .with_message(message)
            .with_time(time);
        handle
            .change_with(options, |tx| tx.put(ROOT, "k", message))
            .unwrap()
            .unwrap();
        let head = handle.heads().unwrap()[0];
        let made = handle.metadata(&head).unwrap().unwrap();
        assert_eq!(made.message.as_deref(), Some(message));
        assert_eq!(made.time, time);
    }
    repo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wait_with_a_limit_times_out_with_the_same_error() {
    let repo = Repo::builder().start().await.unwrap();
    let waited = Duration::from_millis(50);
    let Err(RepoError::Timeout(peer)) = repo.wait_for_peer(&"nobody".into(), waited).await else {
        panic!("waiting for a peer that never comes did not time out");
    };
    assert_eq!(peer.waited, waited);
    let Err(RepoError::Timeout(_)) = repo.wait_for_any_peer(waited).await else {
        panic!("waiting for any peer did not time out");
    };
    let handle = repo.create_empty().await.unwrap();
    let Err(HandleError::Timeout(state)) = handle
        .wait_for_state(waited, |s| s == HandleState::Deleted)
        .await
    else {
        panic!("waiting for a state that never comes did not time out");
    };
    assert_eq!(state.waited, waited);
    repo.shutdown().await;
}
