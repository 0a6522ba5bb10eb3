//! The sync server mounted as a route of an axum application (the `axum_route` example): a
//! tandem client syncs through it, and the application's other routes still answer.

use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::ROOT;
use tandem_net_ws::{ClientConfig, ServerConfig, WebSocketAcceptor, WebSocketClient};
use tandem_repo::{AskOnly, Repo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../examples/axum_route.rs"]
mod example;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_syncs_through_the_axum_route() {
    let (adapter, acceptor) = WebSocketAcceptor::new(ServerConfig::default());
    let server = Repo::builder()
        .share_policy(AskOnly)
        .network(adapter)
        .start()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving =
        tokio::spawn(async move { axum::serve(listener, example::router(acceptor)).await });

    let client = Repo::builder()
        .network(
            WebSocketClient::new(format!("ws://{addr}/sync"), ClientConfig::default()).unwrap(),
        )
        .start()
        .await
        .unwrap();
    client
        .wait_for_peer(server.peer_id(), PATIENCE)
        .await
        .unwrap();
    // The server's repo takes the client in a moment after the client sees it; until then its
    // find would ask nobody.
    server
        .wait_for_peer(client.peer_id(), PATIENCE)
        .await
        .unwrap();
    let (doc, _) = client
        .create_with(|tx| tx.put(ROOT, "via", "axum"))
        .await
        .unwrap();
    let on_server = tokio::time::timeout(PATIENCE, server.find(doc.url()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_server.heads().unwrap(), doc.heads().unwrap());

    // The application's own route, and a plain GET of the sync route, are answered by axum.
    for (path, expected) in [("/", "200 OK"), ("/sync", "400 Bad Request")] {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(PATIENCE, socket.read_to_string(&mut response))
            .await
            .unwrap()
            .unwrap();
        assert!(
            response.starts_with(&format!("HTTP/1.1 {expected}")),
            "{response}"
        );
    }

    client.shutdown().await;
    server.shutdown().await;
    serving.abort();
}

/// The acceptor behind the axum route, with a client, passes the network conformance suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acceptor_behind_an_axum_route_passes_the_network_conformance_suite() {
    use tandem_core::network::conformance::{run_all, AdapterPair};
    let suite = run_all(|| async {
        let (adapter, acceptor) = WebSocketAcceptor::new(ServerConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, example::router(acceptor)).await });
        let client =
            WebSocketClient::new(format!("ws://{addr}/sync"), ClientConfig::default()).unwrap();
        let pair: AdapterPair = (Box::new(adapter), Box::new(client));
        pair
    });
    tokio::time::timeout(Duration::from_secs(60), suite)
        .await
        .expect("a check waited forever");
}
