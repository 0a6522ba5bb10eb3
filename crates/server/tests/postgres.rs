//! The server on PostgreSQL (`--postgres`): documents outlive the server, and a database that
//! goes away under load makes the server not-ready, never acknowledging what was not
//! committed, until it comes back by itself.

mod common;

use std::time::Duration;

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use clap::Parser;
use common::{acknowledged, client_of};
use tandem_core::StorageId;
use tandem_repo::Repo;
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

/// PostgreSQL crashes while a client writes: the server turns not-ready and acknowledges
/// nothing until the database is back; then it recovers by itself, acknowledges what it held,
/// and a new server finds every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_nothing_and_acknowledges_nothing_uncommitted() {
    // Crashed and restarted: a server of its own, even with TANDEM_TEST_POSTGRES_URL set.
    let postgres = TestPostgres::start_own().unwrap_or_else(|error| panic!("{error}"));
    let url = postgres.database().await.unwrap();
    let server = Server::start(&options(&url)).await.unwrap();
    let (client, storage) = client_and_storage(&server).await;
    let (doc, _) = client.create_with(|tx| tx.put(ROOT, "n", 0)).await.unwrap();
    for n in 1..=20 {
        doc.change(|tx| tx.put(ROOT, format!("before-{n}").as_str(), n))
            .unwrap()
            .unwrap();
    }
    acknowledged(&doc, &storage).await;
    let committed = doc.heads().unwrap();

    postgres.crash().unwrap();
    for n in 1..=20 {
        doc.change(|tx| tx.put(ROOT, format!("during-{n}").as_str(), n))
            .unwrap()
            .unwrap();
    }
    wait_readiness(&server, 503).await;
    // Whatever the server reports holding, it is never what it could not commit.
    assert_ne!(
        doc.remote_heads(&storage).map(|e| e.heads),
        Some(doc.heads().unwrap()),
        "acknowledged while the database was down"
    );
    assert!(doc
        .remote_heads(&storage)
        .is_some_and(|e| e.heads == committed));

    postgres.restart().unwrap();
    acknowledged(&doc, &storage).await;
    wait_readiness(&server, 200).await;
    client.shutdown().await;
    server.shutdown().await;

    let server = Server::start(&options(&url)).await.unwrap();
    let (reader, _) = client_and_storage(&server).await;
    let found = reader.find(doc.url()).await.unwrap();
    let missing: Vec<String> = found
        .with_doc(|d| {
            (1..=20)
                .flat_map(|n| [format!("before-{n}"), format!("during-{n}")])
                .filter(|key| d.get(ROOT, key.as_str()).ok().flatten().is_none())
                .collect()
        })
        .unwrap();
    assert!(missing.is_empty(), "lost {missing:?}");
    reader.shutdown().await;
    server.shutdown().await;
}
