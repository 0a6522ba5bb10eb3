//! Many documents and many peers: everything arrives, and arrives intact.

mod common;

use automerge::transaction::Transactable;
use automerge::ROOT;
use common::*;
use futures::future::join_all;
use tandem_repo::{AskOnly, Repo};

// The allocator of tandem-server: with glibc's, this file takes about twice as long.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_documents_sync_between_two_repos() {
    let (a, b, _link) = connected(Repo::builder(), Repo::builder()).await;
    let mut docs = Vec::new();
    for i in 0..10_000i64 {
        let (handle, ()) = a
            .create_with(|tx| tx.put(ROOT, "n", i).unwrap())
            .await
            .unwrap();
        docs.push(handle);
    }
    // A announces everything it holds; B finds each one (most are already there).
    for chunk in docs.chunks(500) {
        let found = join_all(chunk.iter().map(|d| b.find(d.document_id()))).await;
        for (doc, at_b) in chunk.iter().zip(found) {
            assert_eq!(at_b.unwrap().heads().unwrap(), doc.heads().unwrap());
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_peers_each_fetch_a_thousand_documents_from_a_server() {
    let server = Repo::builder().share_policy(AskOnly).start().await.unwrap();
    let mut docs = Vec::new();
    for i in 0..1_000i64 {
        let (handle, ()) = server
            .create_with(|tx| tx.put(ROOT, "n", i).unwrap())
            .await
            .unwrap();
        docs.push(handle);
    }
    let mut clients = Vec::new();
    let mut links = Vec::new();
    for _ in 0..100 {
        let client = Repo::builder().share_policy(AskOnly).start().await.unwrap();
        links.push(link(&server, &client).await);
        clients.push(client);
    }
    let fetches = clients.iter().map(|client| {
        let docs = &docs;
        async move {
            let found = join_all(docs.iter().map(|d| client.find(d.document_id()))).await;
            for (doc, at_client) in docs.iter().zip(found) {
                assert_eq!(at_client.unwrap().heads().unwrap(), doc.heads().unwrap());
            }
        }
    });
    tokio::time::timeout(PATIENCE * 6, join_all(fetches))
        .await
        .expect("fetches did not complete");
    server.shutdown().await;
    for client in clients {
        client.shutdown().await;
    }
}
