//! The server on PostgreSQL (`--postgres`): documents outlive the server, and a database that
//! goes away under load makes the nodes of a cluster on it not-ready, never acknowledging what
//! was not committed, until it comes back and they recover by themselves.

use std::time::Duration;

use crate::common::{acknowledged, client_of};
use automerge::{transaction::Transactable, ReadDoc, ROOT};
use clap::Parser;
use tandem_core::StorageId;
use tandem_repo::{DocHandle, Repo};
use tandem_server::{Options, Server};
use tandem_storage_postgres::TestPostgres;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATIENCE: Duration = Duration::from_secs(30);

fn database() -> TestPostgres {
    TestPostgres::start().unwrap_or_else(|error| panic!("{error}"))
}

fn options(url: &str) -> Options {
    Options::parse_from(["tandem-server", "--port", "0", "--postgres", url])
}

/// A client of `server`, and the server's storage id.
async fn client_and_storage(server: &Server) -> (Repo, StorageId) {
    let storage = server.repo().storage_id().expect("storage").clone();
    (client_of(server).await, storage)
}

/// The status of `GET /readyz`.
async fn readiness(server: &Server) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let request = "GET /readyz HTTP/1.1\r\nHost: tandem\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Asks `/readyz` until it answers `status`.
async fn wait_readiness(server: &Server, status: u16) {
    tokio::time::timeout(PATIENCE, async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        while readiness(server).await != status {
            every.tick().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("/readyz never answered {status}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_in_postgres_outlive_the_server() {
    let postgres = database();
    let url = postgres.database().await.unwrap();
    let server = Server::start(&options(&url)).await.unwrap();
    let (client, storage) = client_and_storage(&server).await;
    let (doc, _) = client
        .create_with(|tx| tx.put(ROOT, "kept", "yes"))
        .await
        .unwrap();
    acknowledged(&doc, &storage).await;
    let heads = doc.heads().unwrap();
    client.shutdown().await;
    server.shutdown().await;

    let server = Server::start(&options(&url)).await.unwrap();
    assert_eq!(server.repo().storage_id(), Some(&storage), "same store");
    let (client, _) = client_and_storage(&server).await;
    let found = client.find(doc.url()).await.unwrap();
    assert_eq!(found.heads().unwrap(), heads);
    let kept = found
        .with_doc(|d| d.get(ROOT, "kept").unwrap().unwrap().0.to_string())
        .unwrap();
    assert_eq!(kept, "\"yes\"");
    client.shutdown().await;
    server.shutdown().await;
}

/// PostgreSQL crashes while clients of two cluster nodes write to one document: both nodes
/// turn not-ready and acknowledge nothing until the database is back; then they recover by
/// themselves (ready, linked, acknowledging what they held), the clients converge, and a new
/// server finds every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_nothing_and_acknowledges_nothing_uncommitted() {
    // Crashed and restarted: a server of its own, even with TANDEM_TEST_POSTGRES_URL set.
    let postgres = TestPostgres::start_own().unwrap_or_else(|error| panic!("{error}"));
    let url = postgres.database().await.unwrap();
    let node_options = crate::cluster::node_options(&url);
    let nodes = [
        Server::start(&node_options).await.unwrap(),
        Server::start(&node_options).await.unwrap(),
    ];
    let linked = |nodes: &[Server; 2]| {
        let (a, b) = (nodes[0].repo().clone(), nodes[1].repo().clone());
        async move {
            a.wait_for_peer(b.peer_id(), PATIENCE)
                .await
                .expect("the nodes did not link");
        }
    };
    linked(&nodes).await;
    let (alice, storage) = client_and_storage(&nodes[0]).await;
    let (bob, _) = client_and_storage(&nodes[1]).await;
    let (doc, _) = alice.create_with(|tx| tx.put(ROOT, "n", 0)).await.unwrap();
    acknowledged(&doc, &storage).await;
    let docs = [doc.clone(), bob.find(doc.url()).await.unwrap()];
    // Each client writes `count` changes named `{phase}-{client}-{n}`, both at once.
    let write = |phase: &'static str, count: usize| {
        let docs = docs.clone();
        async move {
            for n in 1..=count {
                for (client, doc) in docs.iter().enumerate() {
                    doc.change(|tx| tx.put(ROOT, format!("{phase}-{client}-{n}").as_str(), 1))
                        .unwrap()
                        .unwrap();
                }
                tokio::task::yield_now().await;
            }
        }
    };
    // Both clients hold the same heads, and the nodes have acknowledged them.
    let settled = |docs: [DocHandle; 2]| {
        let storage = storage.clone();
        async move {
            let mut changes = Box::pin(futures::stream::select(
                docs[0].changes(),
                docs[1].changes(),
            ));
            tokio::time::timeout(PATIENCE, async {
                while docs[0].heads().unwrap() != docs[1].heads().unwrap() {
                    futures::StreamExt::next(&mut changes).await;
                }
            })
            .await
            .expect("the clients did not converge");
            for doc in &docs {
                acknowledged(doc, &storage).await;
            }
        }
    };
    write("before", 20).await;
    settled(docs.clone()).await;

    postgres.crash().unwrap();
    write("during", 20).await;
    for node in &nodes {
        wait_readiness(node, 503).await;
    }
    // A node acknowledges a client's changes once they are committed: whatever heads it
    // reports to a client, they hold none of that client's own changes made while the
    // database was down. (They may hold the other client's, relayed from the other node: what
    // a node holds in memory is no promise about changes its client did not write.)
    for (client, doc) in docs.iter().enumerate() {
        let reported = doc.remote_heads(&storage).expect("reported before").heads;
        // A sync message may name heads before the changes behind them arrive.
        let mut changes = Box::pin(doc.changes());
        tokio::time::timeout(PATIENCE, async {
            while !doc
                .with_doc(|d| reported.iter().all(|h| d.get_change_by_hash(h).is_some()))
                .unwrap()
            {
                futures::StreamExt::next(&mut changes).await;
            }
        })
        .await
        .expect("the reported heads' changes never arrived");
        let as_reported = doc.with_doc(|d| d.fork_at(&reported)).unwrap().unwrap();
        let acknowledged: Vec<String> = (1..=20)
            .map(|n| format!("during-{client}-{n}"))
            .filter(|key| as_reported.get(ROOT, key.as_str()).ok().flatten().is_some())
            .collect();
        assert!(
            acknowledged.is_empty(),
            "client {client}: acknowledged while the database was down: {acknowledged:?}"
        );
    }

    postgres.restart().unwrap();
    settled(docs.clone()).await;
    for node in &nodes {
        wait_readiness(node, 200).await;
    }
    linked(&nodes).await;
    write("after", 5).await;
    settled(docs.clone()).await;
    let keys: Vec<String> = ["before", "during", "after"]
        .into_iter()
        .flat_map(|phase| {
            let count = if phase == "after" { 5 } else { 20 };
            (0..2).flat_map(move |client| (1..=count).map(move |n| format!("{phase}-{client}-{n}")))
        })
        .collect();
    let lacking = |doc: &DocHandle| -> Vec<String> {
        doc.with_doc(|d| {
            keys.iter()
                .filter(|key| d.get(ROOT, key.as_str()).ok().flatten().is_none())
                .cloned()
                .collect()
        })
        .unwrap()
    };
    let missing = lacking(&docs[0]);
    assert!(missing.is_empty(), "the clients lack {missing:?}");
    alice.shutdown().await;
    bob.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }

    let server = Server::start(&options(&url)).await.unwrap();
    let (reader, _) = client_and_storage(&server).await;
    let found = reader.find(doc.url()).await.unwrap();
    let missing = lacking(&found);
    assert!(missing.is_empty(), "lost {missing:?}");
    reader.shutdown().await;
    server.shutdown().await;
}
