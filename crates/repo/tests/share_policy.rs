//! Share policy: who is offered what, and who may have it at all.

mod common;

use common::*;
use tandem_core::PeerId;
use tandem_repo::{FnSharePolicy, Repo, RepoError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_access_is_told_the_document_is_unavailable() {
    let owner = Repo::builder()
        .peer_id("owner")
        .share_policy(FnSharePolicy::new(
            |_, _| false,
            |peer, _| peer.as_str() != "mallory",
        ))
        .start()
        .await
        .unwrap();
    let mallory = Repo::builder().peer_id("mallory").start().await.unwrap();
    let friend = Repo::builder().peer_id("friend").start().await.unwrap();
    let _l1 = link(&owner, &mallory).await;
    let _l2 = link(&owner, &friend).await;
    let secret = owner.create_empty().await.unwrap();
    // Exactly what a missing document looks like.
    match mallory.find(secret.url()).await {
        Err(RepoError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let found = friend.find(secret.url()).await.unwrap();
    assert_eq!(found.heads().unwrap(), secret.heads().unwrap());
    for repo in [owner, mallory, friend] {
        repo.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_false_does_not_push_a_document() {
    let private_id = tandem_core::DocumentId::random();
    let public_id = tandem_core::DocumentId::random();
    let hidden = private_id.clone();
    let owner = Repo::builder()
        .share_policy(FnSharePolicy::new(
            move |_: &PeerId, doc| doc != Some(&hidden),
            |_, _| true,
        ))
        .start()
        .await
        .unwrap();
    let mut content = automerge::Automerge::new();
    content.empty_commit(Default::default());
    let private = owner
        .import_into(&private_id, &content.save())
        .await
        .unwrap();
    let public = owner
        .import_into(&public_id, &content.save())
        .await
        .unwrap();
    private.when_ready().await.unwrap();
    public.when_ready().await.unwrap();
    let watcher = Repo::builder().start().await.unwrap();
    let _link = link(&owner, &watcher).await;
    // The public document arrives unasked…
    let pushed = tokio::time::timeout(PATIENCE, async {
        loop {
            let held = watcher.documents().await.unwrap();
            if held.contains(public.document_id()) {
                return held;
            }
            let mut peers = watcher.peer_changes();
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(20), peers.changed()).await;
        }
    })
    .await
    .expect("the announced document was never pushed");
    // …the private one does not, but can still be asked for.
    assert!(!pushed.contains(&private_id));
    let asked = watcher.find(&private_id).await.unwrap();
    assert_eq!(asked.heads().unwrap(), private.heads().unwrap());
    owner.shutdown().await;
    watcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denylisted_document_is_neither_served_nor_fetched() {
    let doc_id = tandem_core::DocumentId::random();
    let repo = Repo::builder()
        .denylist([doc_id.clone()])
        .start()
        .await
        .unwrap();
    assert!(matches!(
        repo.find(&doc_id).await,
        Err(RepoError::Denied(_))
    ));
    repo.shutdown().await;
}
