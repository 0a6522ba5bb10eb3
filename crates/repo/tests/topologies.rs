//! Documents crossing more than one hop: a chain, and a star of 20 concurrent writers.

use crate::common::*;
use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use tandem_repo::{AskOnly, Repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_relays_documents_and_edits_both_ways() {
    let a = Repo::builder().peer_id("a").start().await.unwrap();
    let b = Repo::builder().peer_id("b").start().await.unwrap();
    let c = Repo::builder().peer_id("c").start().await.unwrap();
    let _ab = link(&a, &b).await;
    let _bc = link(&b, &c).await;
    assert!(
        !a.peers().contains_key(c.peer_id()),
        "A and C meet only through B"
    );

    let doc_a = a.create_empty().await.unwrap();
    doc_a
        .change(|tx| tx.put(ROOT, "from", "a").unwrap())
        .unwrap();
    let doc_c = c.find(doc_a.url()).await.unwrap();
    wait_for_heads(&doc_c, &doc_a.heads().unwrap()).await;

    doc_c
        .change(|tx| tx.put(ROOT, "reply", "c").unwrap())
        .unwrap();
    wait_for_heads(&doc_a, &doc_c.heads().unwrap()).await;
    let reply = doc_a
        .with_doc(|d| d.get(ROOT, "reply").unwrap().map(|(v, _)| v.to_string()))
        .unwrap();
    assert_eq!(reply.as_deref(), Some("\"c\""));
    for repo in [a, b, c] {
        repo.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_announces_nothing_still_relays_what_is_asked_for() {
    let hub = Repo::builder().share_policy(AskOnly).start().await.unwrap();
    let a = Repo::builder().start().await.unwrap();
    let c = Repo::builder().start().await.unwrap();
    let _ha = link(&hub, &a).await;
    let _hc = link(&hub, &c).await;
    let doc_a = a.create_empty().await.unwrap();
    // A pushes to the hub (A's policy announces); C asks the hub, which has it by then.
    let at_hub = hub.find(doc_a.url()).await.unwrap();
    wait_for_heads(&at_hub, &doc_a.heads().unwrap()).await;
    let doc_c = c.find(doc_a.url()).await.unwrap();
    doc_a
        .change(|tx| tx.put(ROOT, "later", 1).unwrap())
        .unwrap();
    wait_for_heads(&doc_c, &doc_a.heads().unwrap()).await;
    for repo in [hub, a, c] {
        repo.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_of_twenty_concurrent_writers_converges() {
    let hub = Repo::builder().peer_id("hub").start().await.unwrap();
    let mut spokes = Vec::new();
    let mut links = Vec::new();
    for i in 0..20 {
        let spoke = Repo::builder()
            .peer_id(format!("spoke-{i}"))
            .start()
            .await
            .unwrap();
        links.push(link(&hub, &spoke).await);
        spokes.push(spoke);
    }
    let doc = hub.create_empty().await.unwrap();
    let mut handles = vec![doc.clone()];
    for spoke in &spokes {
        handles.push(spoke.find(doc.url()).await.unwrap());
    }
    // Everyone writes at once, several times.
    for round in 0..5 {
        for (i, handle) in handles.iter().enumerate() {
            handle
                .change(|tx| tx.put(ROOT, format!("w{i}-{round}"), round).unwrap())
                .unwrap();
        }
    }
    let heads = wait_converged(&handles).await;
    assert!(!heads.is_empty());
    for handle in &handles {
        assert_eq!(handle.with_doc(|d| d.keys(ROOT).count()).unwrap(), 21 * 5);
    }
    hub.shutdown().await;
    for spoke in spokes {
        spoke.shutdown().await;
    }
}
