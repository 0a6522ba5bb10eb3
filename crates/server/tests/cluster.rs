//! Servers on one PostgreSQL database form a cluster: they find each other in the database,
//! link, and a client on any node sees what clients on the others write.

mod common;

use std::time::Duration;

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use clap::Parser;
use common::{acknowledged, client_of};
use futures::StreamExt;
use tandem_repo::DocHandle;
use tandem_server::{Options, Server};
use tandem_storage_postgres::TestPostgres;

const PATIENCE: Duration = Duration::from_secs(30);
const SECRET: &str = "cluster-secret";

fn node_options(url: &str) -> Options {
    Options::parse_from([
        "tandem-server",
        "--port",
        "0",
        "--postgres",
        url,
        "--cluster-advertise",
        "ws://127.0.0.1:0",
        "--cluster-secret",
        SECRET,
    ])
}

/// Waits until `doc` holds `key` = `value`.
async fn wait_for_value(doc: &DocHandle, key: &str, value: i64) {
    let mut changes = Box::pin(doc.changes());
    tokio::time::timeout(PATIENCE, async {
        loop {
            let now = doc
                .with_doc(|d| {
                    d.get(ROOT, key)
                        .ok()
                        .flatten()
                        .and_then(|(v, _)| v.as_i64())
                })
                .unwrap();
            if now == Some(value) {
                return;
            }
            changes.next().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{key} never became {value}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_link_and_clients_on_different_nodes_see_each_others_changes() {
    let postgres = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = postgres.database().await.unwrap();
    let a = Server::start(&node_options(&url)).await.unwrap();
    let b = Server::start(&node_options(&url)).await.unwrap();
    // Each finds the other in the database and one dials the other.
    a.repo()
        .wait_for_peer(b.repo().peer_id(), PATIENCE)
        .await
        .expect("node a never linked to node b");
    b.repo()
        .wait_for_peer(a.repo().peer_id(), PATIENCE)
        .await
        .expect("node b never linked to node a");

    let (alice, bob) = (client_of(&a).await, client_of(&b).await);
    let (doc, _) = alice.create_with(|tx| tx.put(ROOT, "n", 1)).await.unwrap();
    acknowledged(&doc, a.repo().storage_id().unwrap()).await;
    let theirs = bob.find(doc.url()).await.unwrap();
    wait_for_value(&theirs, "n", 1).await;
    for n in 2..=5 {
        doc.change(|tx| tx.put(ROOT, "n", n)).unwrap().unwrap();
        wait_for_value(&theirs, "n", n).await;
        theirs.change(|tx| tx.put(ROOT, "m", n)).unwrap().unwrap();
        wait_for_value(&doc, "m", n).await;
    }

    // A node that leaves is dropped by the other at once.
    let mut peers = a.repo().peer_changes();
    let b_id = b.repo().peer_id().clone();
    bob.shutdown().await;
    b.shutdown().await;
    tokio::time::timeout(PATIENCE, peers.wait_for(|peers| !peers.contains_key(&b_id)))
        .await
        .expect("node a kept node b")
        .unwrap();
    alice.shutdown().await;
    a.shutdown().await;
}
