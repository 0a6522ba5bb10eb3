//! Share policy: who is offered what, and who may have it at all.

use crate::common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::ROOT;
use tandem_core::DocumentId;
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

/// A policy whose announcements (`announce`) and access (`access`) an application switches at
/// run time, as automerge-repo applications do before calling `shareConfigChanged`.
fn switchable(announce: &Arc<AtomicBool>, access: &Arc<AtomicBool>) -> FnSharePolicy {
    let (announce, access) = (announce.clone(), access.clone());
    FnSharePolicy::new(
        move |_, _| announce.load(Ordering::SeqCst),
        move |_, _| access.load(Ordering::SeqCst),
    )
}

/// Waits until `repo` holds `id` in memory: a document offered to it arrives unasked.
async fn wait_held(repo: &Repo, id: &DocumentId) {
    tokio::time::timeout(PATIENCE, async {
        let mut peers = repo.peer_changes();
        while !repo.documents().await.unwrap().contains(id) {
            // Nothing signals an offered document's arrival; wake now and then to look.
            let _ = tokio::time::timeout(Duration::from_millis(20), peers.changed()).await;
        }
    })
    .await
    .expect("the document never arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_opens_up_offers_documents_once_the_repo_is_told() {
    let announce = Arc::new(AtomicBool::new(false));
    let access = Arc::new(AtomicBool::new(true));
    let owner = Repo::builder()
        .share_policy(switchable(&announce, &access))
        .start()
        .await
        .unwrap();
    let watcher = Repo::builder().start().await.unwrap();
    let _link = link(&owner, &watcher).await;
    let doc = owner.create_empty().await.unwrap();
    doc.change(|tx| tx.put(ROOT, "state", "written before the policy opened"))
        .unwrap()
        .unwrap();

    announce.store(true, Ordering::SeqCst);
    owner.share_policy_changed().await.unwrap();
    wait_held(&watcher, doc.document_id()).await;
    let pushed = watcher.find(doc.url()).await.unwrap();
    wait_for_heads(&pushed, &doc.heads().unwrap()).await;
    // And it stays shared: later changes follow.
    doc.change(|tx| tx.put(ROOT, "state", "written after"))
        .unwrap()
        .unwrap();
    wait_for_heads(&pushed, &doc.heads().unwrap()).await;
    owner.shutdown().await;
    watcher.shutdown().await;
}
