//! A cluster of `tandem-server` processes on one PostgreSQL, with real JS clients: clients on
//! different nodes edit one document and converge, a client on one node finds what another
//! created, a node killed with `kill -9` mid-writes loses nothing it acknowledged, and a node
//! that joins later serves.

use std::ffi::OsStr;
use std::time::Duration;

use crate::common::{acknowledged, kill_hard, lacking, start_server, ServerProcess};
use crate::js::NodeProcess;
use automerge::{transaction::Transactable, ChangeHash, ROOT};
use serde_json::Value as Json;
use tandem_core::persistence::load_document;
use tandem_core::{StorageAdapter, StorageId};
use tandem_net_ws::{ClientConfig, WebSocketClient};
use tandem_repo::{DocHandle, Repo};
use tandem_storage_postgres::{PostgresStorage, TestPostgres};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATIENCE: Duration = Duration::from_secs(30);
const SECRET: &str = "cluster-secret";

fn start_node(postgres_url: &str) -> (ServerProcess, String) {
    start_server(&[
        OsStr::new("--postgres"),
        OsStr::new(postgres_url),
        OsStr::new("--cluster-advertise"),
        OsStr::new("ws://127.0.0.1:0"),
        OsStr::new("--cluster-secret"),
        OsStr::new(SECRET),
    ])
}

/// `tandem_cluster_links` as node `url` reports it: the live nodes it is linked with.
async fn other_nodes(url: &str) -> Option<u64> {
    let address = url.strip_prefix("ws://")?;
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: tandem\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response
        .lines()
        .find_map(|line| line.strip_prefix("tandem_cluster_links "))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits until node `url` is linked with `count` other live nodes.
async fn wait_for_other_nodes(url: &str, count: u64) {
    tokio::time::timeout(PATIENCE, async {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        while other_nodes(url).await != Some(count) {
            every.tick().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{url} never saw {count} other nodes"));
}

/// Runs a `ws-peer.mjs` command to completion; its one JSON line.
async fn run_js(args: &[&str]) -> Json {
    let mut node = NodeProcess::start("ws-peer.mjs", args);
    let out = node.next_json_async(PATIENCE).await;
    tokio::task::block_in_place(|| node.finish(PATIENCE));
    out
}

async fn rust_client(url: &str) -> Repo {
    let adapter = WebSocketClient::new(url, ClientConfig::default()).unwrap();
    let repo = Repo::builder().network(adapter).start().await.unwrap();
    repo.wait_for_any_peer(PATIENCE).await.unwrap();
    repo
}

/// Creates a document through node `url` (so that no other node holds it: what it
/// acknowledges, only its own commits hold) and writes to it until `node` is killed, after a
/// few acknowledged changes, at a moment chosen by the clock, with a change or two not yet
/// acknowledged. The writer, its document and the heads acknowledged before the kill.
async fn write_until_killed(
    node: &mut ServerProcess,
    url: &str,
) -> (Repo, DocHandle, StorageId, Vec<ChangeHash>) {
    let writer = rust_client(url).await;
    let storage = writer
        .peers()
        .into_values()
        .find_map(|meta| meta.storage_id)
        .expect("the node has storage");
    let (doc, _) = writer
        .create_with(|tx| tx.put(ROOT, "rust", -1))
        .await
        .unwrap();
    let mut before_kill = Vec::new();
    for i in 0..5i64 {
        doc.change(|tx| tx.put(ROOT, "rust", i)).unwrap().unwrap();
        acknowledged(&doc, &storage).await;
        before_kill = doc.heads().unwrap();
    }
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 3;
    for n in 0..=jitter {
        let _ = doc
            .change(|tx| tx.put(ROOT, "unacknowledged", n as i64))
            .unwrap();
    }
    kill_hard(node);
    (writer, doc, storage, before_kill)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_three_serves_js_clients_and_loses_nothing_when_a_node_is_killed() {
    let postgres = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let database = postgres.database().await.unwrap();
    let (mut node_1, url_1) = start_node(&database);
    let (node_2, url_2) = start_node(&database);
    let (node_3, url_3) = start_node(&database);
    for url in [&url_1, &url_2, &url_3] {
        wait_for_other_nodes(url, 2).await;
    }

    // Created through node 1, found through node 2.
    let created = run_js(&["create", &url_1]).await;
    let doc_url = created["url"].as_str().expect("a url").to_owned();
    let found = run_js(&["find", &url_2, &doc_url]).await;
    assert_eq!(found["heads"], created["heads"]);
    assert_eq!(found["content"], created["content"]);

    // Clients on nodes 2 and 3 edit at once; each sees the other's ten changes arrive.
    let start = created["content"]["count"]["$counter"].as_i64().unwrap();
    let until = (start + 20).to_string();
    let mut on_2 = NodeProcess::start(
        "ws-peer.mjs",
        &["edit-until", &url_2, &doc_url, "10", &until],
    );
    let mut on_3 = NodeProcess::start(
        "ws-peer.mjs",
        &["edit-until", &url_3, &doc_url, "10", &until],
    );
    let (seen_2, seen_3) = (
        on_2.next_json_async(PATIENCE).await,
        on_3.next_json_async(PATIENCE).await,
    );
    tokio::task::block_in_place(|| {
        on_2.finish(PATIENCE);
        on_3.finish(PATIENCE);
    });
    assert_eq!(
        seen_2["heads"], seen_3["heads"],
        "clients on nodes 2 and 3 diverged"
    );
    assert_eq!(seen_2["content"], seen_3["content"]);

    // Node 1 dies mid-writes to a document only it holds. What it acknowledged is in the
    // database, and found through node 3, before its client comes back.
    let (writer, written, storage, before_kill) = write_until_killed(&mut node_1, &url_1).await;
    let store = PostgresStorage::connect_existing(&database).await.unwrap();
    let id = written.document_id().clone();
    let stored = store.load_document(&id).await.unwrap().chunks;
    let stored = load_document(&id, stored)
        .document
        .expect("the document is stored");
    let missing = lacking(&stored, &before_kill);
    assert!(
        missing.is_empty(),
        "acknowledged by node 1, not committed: {missing:?}"
    );
    let reader = rust_client(&url_3).await;
    let found = reader.find(written.url()).await.unwrap();
    let missing = found.with_doc(|d| lacking(d, &before_kill)).unwrap();
    assert!(
        missing.is_empty(),
        "acknowledged by node 1, not found through node 3: {missing:?}"
    );

    // Its client carries on through node 3 (as a load balancer would send it), whose
    // acknowledgement is the same storage id's: the store is shared.
    let other = WebSocketClient::new(url_3.as_str(), ClientConfig::default()).unwrap();
    writer.add_network(other).await.unwrap();
    written
        .change(|tx| tx.put(ROOT, "rust", 100))
        .unwrap()
        .unwrap();
    acknowledged(&written, &storage).await;
    let shared = reader.find(doc_url.as_str()).await.unwrap();
    let heads: Vec<String> = shared
        .heads()
        .unwrap()
        .iter()
        .map(|h| h.to_string())
        .collect();
    writer.shutdown().await;
    reader.shutdown().await;

    // A fourth node joins (node 1's entry lapses meanwhile) and serves the document.
    let (node_4, url_4) = start_node(&database);
    wait_for_other_nodes(&url_4, 2).await;
    let through_4 = run_js(&["find", &url_4, &doc_url]).await;
    let mut theirs: Vec<String> = through_4["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    theirs.sort();
    let mut ours = heads;
    ours.sort();
    assert_eq!(theirs, ours);
    drop((node_2, node_3, node_4));
}
