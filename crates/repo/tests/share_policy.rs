//! Share policy: who is offered what, and who may have it at all.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::ROOT;
use tandem_core::{DocumentId, PeerId};
use tandem_repo::{FnSharePolicy, HandleState, Repo, RepoError};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_taken_away_stops_syncing_and_given_back_resumes() {
    let allowed = Arc::new(AtomicBool::new(true));
    let revoked = DocumentId::random();
    let policy = {
        let (allowed, revoked) = (allowed.clone(), revoked.clone());
        FnSharePolicy::new(
            |_, _| false,
            move |peer, doc| {
                peer.as_str() != "friend" || *doc != revoked || allowed.load(Ordering::SeqCst)
            },
        )
    };
    let owner = Repo::builder().share_policy(policy).start().await.unwrap();
    let friend = Repo::builder().peer_id("friend").start().await.unwrap();
    let witness = Repo::builder().start().await.unwrap();
    let _l1 = link(&owner, &friend).await;
    let _l2 = link(&owner, &witness).await;
    let mut empty = automerge::Automerge::new();
    empty.empty_commit(Default::default());
    let doc = owner.import_into(&revoked, &empty.save()).await.unwrap();
    let other = owner.create_empty().await.unwrap();
    let at_friend = friend.find(doc.url()).await.unwrap();
    let at_witness = witness.find(doc.url()).await.unwrap();

    allowed.store(false, Ordering::SeqCst);
    owner.share_policy_changed().await.unwrap();
    doc.change(|tx| tx.put(ROOT, "state", "after the friend lost access"))
        .unwrap()
        .unwrap();
    let heads = doc.heads().unwrap();
    // The owner sends a change to every peer it syncs with at once: the witness has it, so
    // anything for the friend was queued on its link by now. A round trip on that link (a
    // find of another document) and a flush of the friend's document (queued behind whatever
    // arrived before) leave no message for it unapplied.
    wait_for_heads(&at_witness, &heads).await;
    friend.find(other.url()).await.unwrap();
    friend
        .flush_documents([doc.document_id().clone()])
        .await
        .unwrap();
    assert_ne!(
        at_friend.heads().unwrap(),
        heads,
        "a peer without access any more still got the change"
    );

    allowed.store(true, Ordering::SeqCst);
    owner.share_policy_changed().await.unwrap();
    wait_for_heads(&at_friend, &heads).await;
    for repo in [owner, friend, witness] {
        repo.shutdown().await;
    }
}

/// A peer refused a document it asked for is synced with once the policy lets it have it: the
/// ask counts although it was refused (automerge-repo records it for exactly this), and the
/// peer's unavailable handle turns ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refused_then_granted_access_gets_the_document_it_asked_for() {
    let allowed = Arc::new(AtomicBool::new(false));
    let policy = {
        let allowed = allowed.clone();
        FnSharePolicy::new(|_, _| false, move |_, _| allowed.load(Ordering::SeqCst))
    };
    let owner = Repo::builder().share_policy(policy).start().await.unwrap();
    let asker = Repo::builder().start().await.unwrap();
    let _link = link(&owner, &asker).await;
    let doc = owner.create_empty().await.unwrap();
    let wanted = asker.find_with_progress(doc.url()).await.unwrap();
    let state = wanted
        .wait_for_state(PATIENCE, |s| s == HandleState::Unavailable)
        .await
        .unwrap();
    assert_eq!(state, HandleState::Unavailable);

    allowed.store(true, Ordering::SeqCst);
    owner.share_policy_changed().await.unwrap();
    wanted
        .wait_for_state(PATIENCE, |s| s == HandleState::Ready)
        .await
        .expect("the document never came once access was granted");
    wait_for_heads(&wanted, &doc.heads().unwrap()).await;
    owner.shutdown().await;
    asker.shutdown().await;
}
