//! A find made right after a client repo starts, before its client has joined the server, waits
//! for that first attempt instead of giving up for want of peers (as automerge-repo's `find`
//! waits for its network adapters to be ready); a find with no server to reach still ends.

use std::time::Duration;

use automerge::{transaction::Transactable, ROOT};
use futures::StreamExt;
use tandem_net_ws::{ClientConfig, ServerConfig, WebSocketClient, WebSocketServer};
use tandem_repo::{FindProgress, Repo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const PATIENCE: Duration = Duration::from_secs(20);

/// A TCP relay to `target` that holds its first connection until `release` fires: the client's
/// first attempt is under way but cannot finish.
async fn gate(target: std::net::SocketAddr) -> (std::net::SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("bound");
    let (release, released) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.expect("the client connects");
        if released.await.is_err() {
            return;
        }
        let mut server = TcpStream::connect(target)
            .await
            .expect("the server listens");
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });
    (address, release)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_find_waits_for_the_clients_first_attempt() {
    let server = WebSocketServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .expect("bind");
    let server_address = server.local_addr().expect("bound");
    let hub = Repo::builder()
        .network(server)
        .start()
        .await
        .expect("starts");
    let (doc, _) = hub
        .create_with(|tx| tx.put(ROOT, "on", "the server"))
        .await
        .expect("created");

    let (gated, release) = gate(server_address).await;
    let client =
        WebSocketClient::new(format!("ws://{gated}"), ClientConfig::default()).expect("a url");
    let app = Repo::builder()
        .network(client)
        .start()
        .await
        .expect("starts");
    let mut progress = Box::pin(
        app.find_with_progress(doc.url())
            .await
            .expect("the repo runs"),
    );

    // Not in (empty) storage, no peer yet: requested, and still waiting.
    let requesting = tokio::time::timeout(PATIENCE, async {
        while let Some(step) = progress.next().await {
            match step {
                FindProgress::Loading => continue,
                other => return other,
            }
        }
        panic!("the find ended without a word");
    })
    .await
    .expect("the find moved on");
    assert!(
        matches!(requesting, FindProgress::Requesting { .. }),
        "the find did not wait for the client's first attempt: {requesting:?}"
    );

    release.send(()).expect("the gate waits");
    let last = tokio::time::timeout(PATIENCE, async {
        let mut last = None;
        while let Some(step) = progress.next().await {
            last = Some(step);
        }
        last
    })
    .await
    .expect("the find ended");
    assert!(
        matches!(last, Some(FindProgress::Ready(_))),
        "the document the server has was not found: {last:?}"
    );
    app.shutdown().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_server_to_reach_a_find_ends_unavailable() {
    // A port nobody listens on: bound, then closed.
    let unused = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("bound");
    let client =
        WebSocketClient::new(format!("ws://{unused}"), ClientConfig::default()).expect("a url");
    let app = Repo::builder()
        .network(client)
        .start()
        .await
        .expect("starts");
    let found = tokio::time::timeout(PATIENCE, app.find(tandem_core::DocumentId::random()))
        .await
        .expect("the find ended once the first attempt failed");
    assert!(found.is_err(), "found a document nobody has");
    app.shutdown().await;
}
