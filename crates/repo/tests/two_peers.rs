//! Two repos over an in-memory link: find, concurrent edits of every data type, ephemeral.

use crate::common::*;
use automerge::transaction::Transactable;
use automerge::{ObjType, Patch, PatchAction, ReadDoc, ScalarValue, ROOT};
use futures::StreamExt;
use tandem_repo::{ChangeOrigin, HandleState, Repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_created_on_one_peer_is_found_on_the_other() {
    let (a, b, _link) = connected(Repo::builder(), Repo::builder()).await;
    let doc = a
        .create_from(&serde_json::json!({"title": "hello", "n": 3}))
        .await
        .unwrap();
    let found = b.find(doc.url()).await.unwrap();
    assert_eq!(found.heads().unwrap(), doc.heads().unwrap());
    let title = found
        .with_doc(|d| {
            let (_, text) = d.get(ROOT, "title").unwrap().unwrap();
            d.text(&text).unwrap()
        })
        .unwrap();
    assert_eq!(title, "hello");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_maps_lists_text_and_counters_converge() {
    let (a, b, _link) = connected(Repo::builder(), Repo::builder()).await;
    let (doc_a, (list, text)) = a
        .create_with(|tx| {
            let list = tx.put_object(ROOT, "list", ObjType::List).unwrap();
            let text = tx.put_object(ROOT, "text", ObjType::Text).unwrap();
            tx.splice_text(&text, 0, 0, "hello").unwrap();
            tx.put(ROOT, "count", ScalarValue::counter(0)).unwrap();
            (list, text)
        })
        .await
        .unwrap();
    let doc_b = b.find(doc_a.document_id()).await.unwrap();
    for round in 0..20i64 {
        let (list_a, text_a) = (list.clone(), text.clone());
        doc_a
            .change(move |tx| {
                tx.put(ROOT, format!("a{round}"), round).unwrap();
                tx.insert(&list_a, 0, round).unwrap();
                tx.splice_text(&text_a, 0, 0, "A").unwrap();
                tx.increment(ROOT, "count", 1).unwrap();
            })
            .unwrap();
        let (list_b, text_b) = (list.clone(), text.clone());
        doc_b
            .change(move |tx| {
                tx.put(ROOT, format!("b{round}"), round).unwrap();
                tx.insert(&list_b, 0, -round).unwrap();
                tx.splice_text(&text_b, 5, 0, "B").unwrap();
                tx.increment(ROOT, "count", 10).unwrap();
            })
            .unwrap();
        if round % 5 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let heads = wait_converged(&[doc_a.clone(), doc_b.clone()]).await;
    // Two heads if each writer's last change missed the other's; one if it had seen it.
    assert!((1..=2).contains(&heads.len()), "heads: {heads:?}");
    let read = |h: &tandem_repo::DocHandle| {
        h.with_doc(|d| {
            let count = d.get(ROOT, "count").unwrap().unwrap().0.to_string();
            (
                d.keys(ROOT).count(),
                d.length(&list),
                d.text(&text).unwrap(),
                count,
            )
        })
        .unwrap()
    };
    let (keys, len, text_value, count) = read(&doc_a);
    assert_eq!(read(&doc_b), (keys, len, text_value.clone(), count.clone()));
    assert_eq!(keys, 3 + 40);
    assert_eq!(len, 40);
    assert_eq!(text_value.len(), 5 + 40);
    assert_eq!(count, "Counter: 220");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_events_name_their_origin() {
    let (a, b, _link) = connected(Repo::builder(), Repo::builder()).await;
    let doc_a = a.create_empty().await.unwrap();
    let doc_b = b.find(doc_a.url()).await.unwrap();
    let mut events_b = Box::pin(doc_b.changes());
    let mut events_a = Box::pin(doc_a.changes());
    doc_a.change(|tx| tx.put(ROOT, "k", "v").unwrap()).unwrap();
    let local = tokio::time::timeout(PATIENCE, events_a.next())
        .await
        .unwrap()
        .unwrap();
    assert!(local.is_local());
    let remote = tokio::time::timeout(PATIENCE, events_b.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(remote.origin, ChangeOrigin::Peer(a.peer_id().clone()));
    assert_eq!(remote.heads, doc_a.heads().unwrap());
    assert!(!remote.patches.is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

/// Patches with those that commute (other objects, other keys of a map) put in one order, so
/// that a log and a diff of the same change compare equal; the order of patches to one sequence
/// or one map key is kept.
fn in_commuting_order(mut patches: Vec<Patch>) -> Vec<Patch> {
    patches.sort_by_cached_key(|patch| {
        let key = match &patch.action {
            PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => key.clone(),
            _ => String::new(),
        };
        (format!("{:?}", patch.obj), key)
    });
    patches
}

/// Takes `handle`'s change events up to the one that reaches `target`, checking that each is
/// local (or remote) as said and that its patches say what a diff from the previous heads says;
/// returns the heads reached.
async fn patches_match_diffs(
    events: &mut (impl futures::Stream<Item = tandem_repo::DocumentChange> + Unpin),
    handle: &tandem_repo::DocHandle,
    mut before: Vec<automerge::ChangeHash>,
    target: &[automerge::ChangeHash],
    local: bool,
) -> Vec<automerge::ChangeHash> {
    loop {
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.is_local(), local);
        assert_eq!(
            in_commuting_order(event.patches.to_vec()),
            in_commuting_order(handle.diff(&before, &event.heads).unwrap()),
            "{} change",
            if local { "local" } else { "remote" }
        );
        before = event.heads.clone();
        if event.heads == target {
            return before;
        }
    }
}

/// Patches of local and remote changes are logged as the changes are made (not diffed
/// afterwards): they must say what a diff between the event's heads says, change after change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_patches_match_a_diff() {
    let (a, b, _link) = connected(Repo::builder(), Repo::builder()).await;
    let doc_a = a.create_empty().await.unwrap();
    let doc_b = b.find(doc_a.url()).await.unwrap();
    let mut events_a = Box::pin(doc_a.changes());
    let mut events_b = Box::pin(doc_b.changes());
    let mut before_a = doc_a.heads().unwrap();
    // B's starting heads are read before A's first change, which may reach B at once.
    let mut before = doc_b.heads().unwrap();
    let (list, text) = doc_a
        .change(|tx| {
            let list = tx.put_object(ROOT, "list", ObjType::List).unwrap();
            let text = tx.put_object(ROOT, "text", ObjType::Text).unwrap();
            (list, text)
        })
        .unwrap();
    for i in 0..20i64 {
        doc_a
            .change(|tx| {
                tx.put(ROOT, "n", i).unwrap();
                tx.insert(&list, 0, i).unwrap();
                tx.splice_text(&text, 0, 0, "ab").unwrap();
                if i % 3 == 2 {
                    tx.delete(&list, 1).unwrap();
                }
            })
            .unwrap();
        let target = doc_a.heads().unwrap();
        before_a = patches_match_diffs(&mut events_a, &doc_a, before_a, &target, true).await;
        before = patches_match_diffs(&mut events_b, &doc_b, before, &target, false).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_messages_travel_both_ways() {
    let (a, b, _link) = connected(Repo::builder(), Repo::builder()).await;
    let doc_a = a.create_empty().await.unwrap();
    let doc_b = b.find(doc_a.url()).await.unwrap();
    let mut at_a = Box::pin(doc_a.ephemeral_messages());
    let mut at_b = Box::pin(doc_b.ephemeral_messages());
    doc_a
        .broadcast(&serde_json::json!({"cursor": 1}))
        .await
        .unwrap();
    let got = tokio::time::timeout(PATIENCE, at_b.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.sender(), a.peer_id());
    assert_eq!(
        got.decode::<serde_json::Value>().unwrap(),
        serde_json::json!({"cursor": 1})
    );
    doc_b.broadcast(&"hi back").await.unwrap();
    let got = tokio::time::timeout(PATIENCE, at_a.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.decode::<String>().unwrap(), "hi back");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_catches_up_when_restored() {
    let (a, b, link) = connected(Repo::builder(), Repo::builder()).await;
    let doc_a = a.create_empty().await.unwrap();
    let doc_b = b.find(doc_a.url()).await.unwrap();
    link.cut();
    let mut peers = a.peer_changes();
    tokio::time::timeout(PATIENCE, peers.wait_for(|p| p.is_empty()))
        .await
        .unwrap()
        .unwrap();
    doc_a
        .change(|tx| tx.put(ROOT, "offline", 1).unwrap())
        .unwrap();
    doc_b
        .change(|tx| tx.put(ROOT, "offline-b", 2).unwrap())
        .unwrap();
    link.restore();
    wait_connected(&a, &b).await;
    let heads = wait_converged(&[doc_a.clone(), doc_b.clone()]).await;
    assert_eq!(heads.len(), 2);
    assert_eq!(doc_b.state(), HandleState::Ready);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_with_heads_finds_a_read_only_view_at_those_heads() {
    let (a, b, _link) = connected(Repo::builder(), Repo::builder()).await;
    let (doc, _) = a.create_with(|tx| tx.put(ROOT, "v", 1)).await.unwrap();
    let first = doc.url_heads().unwrap();
    let pinned = tandem_core::AutomergeUrl::with_heads(doc.document_id().clone(), first);
    doc.change(|tx| tx.put(ROOT, "v", 2)).unwrap().unwrap();
    let latest = doc.heads().unwrap();
    let live = b.find(doc.url()).await.unwrap();
    wait_for_heads(&live, &latest).await;

    let read_v = |h: &tandem_repo::DocHandle| {
        h.with_doc(|d| d.get(ROOT, "v").unwrap().unwrap().0.as_i64())
            .unwrap()
    };
    let view = b.find(pinned.to_string()).await.unwrap();
    assert_eq!(read_v(&view), Some(1));
    assert_eq!(read_v(&live), Some(2));
    assert_eq!(view.url(), pinned);
    assert!(matches!(
        view.change(|tx| tx.put(ROOT, "v", 3)),
        Err(tandem_repo::HandleError::ReadOnly(_))
    ));
    // The live handle moves on; the view does not.
    live.change(|tx| tx.put(ROOT, "v", 4)).unwrap().unwrap();
    assert_eq!(read_v(&view), Some(1));

    // Heads the document never had are an error, not an empty view.
    let mut other = automerge::AutoCommit::new();
    other.put(ROOT, "x", 1).unwrap();
    let bogus = tandem_core::AutomergeUrl::with_heads(
        doc.document_id().clone(),
        tandem_core::url_heads(&other.get_heads()),
    );
    assert!(matches!(
        b.find(bogus).await,
        Err(tandem_repo::RepoError::UnknownHeads(_))
    ));
    a.shutdown().await;
    b.shutdown().await;
}

/// A transport removed closes its connections (the peer leaves, on both sides) and opens no
/// more; a transport added later connects again and syncs what changed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_network_disconnects_and_another_reconnects() {
    let alice = Repo::builder().peer_id("alice").start().await.unwrap();
    let bob = Repo::builder().peer_id("bob").start().await.unwrap();
    let (left, right, _link) = tandem_repo::network::memory::pair();
    let network = alice.add_network(left).await.unwrap();
    bob.add_network(right).await.unwrap();
    wait_connected(&alice, &bob).await;
    assert_eq!(alice.networks(), vec![network]);
    let doc = alice.create_empty().await.unwrap();
    let at_bob = bob.find(doc.url()).await.unwrap();

    alice.remove_network(network).await.unwrap();
    let mut alices = alice.peer_changes();
    let mut bobs = bob.peer_changes();
    tokio::time::timeout(PATIENCE, async {
        alices.wait_for(|p| p.is_empty()).await.unwrap();
        bobs.wait_for(|p| p.is_empty()).await.unwrap();
    })
    .await
    .expect("the peers did not leave");
    assert!(alice.networks().is_empty());
    doc.change(|tx| tx.put(ROOT, "while", "apart").unwrap())
        .unwrap();

    let _again = link(&alice, &bob).await;
    wait_for_heads(&at_bob, &doc.heads().unwrap()).await;
    alice.shutdown().await;
    bob.shutdown().await;
}
