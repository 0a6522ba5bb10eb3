//! The HTTP front: health and readiness, and a WebSocket upgrade on any path.

use std::path::Path;
use std::time::Duration;

use tandem_net_ws::{ClientConfig, WebSocketClient};
use tandem_repo::Repo;
use tandem_server::{Options, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATIENCE: Duration = Duration::from_secs(30);

fn options(data_dir: &Path) -> Options {
    Options {
        port: 0,
        host: "127.0.0.1".into(),
        data_dir: data_dir.to_path_buf(),
        memory: false,
        max_frame_size: tandem_net_ws::DEFAULT_MAX_FRAME,
        remote_heads_gossip: false,
        idle_seconds: 300,
        tls_cert: None,
        tls_key: None,
    }
}

/// The status code and body of `GET path`, over a fresh connection.
async fn get(server: &Server, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: tandem\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("no response")
        .unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_up_while_serving_and_readiness_follows_storage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&options(&data)).await.unwrap();
    assert_eq!(get(&server, "/healthz").await.0, 200);
    assert_eq!(get(&server, "/readyz").await.0, 200);
    assert_eq!(get(&server, "/").await, (200, "tandem is running\n".into()));
    assert_eq!(get(&server, "/nothing-here").await.0, 404);

    // The data directory becomes a file: storage fails, and readiness says why.
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::write(&data, b"not a directory").unwrap();
    let (status, body) = get(&server, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("storage"), "{body}");
    assert_eq!(get(&server, "/healthz").await.0, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_connect_on_any_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&options(dir.path())).await.unwrap();
    for path in ["", "/sync", "/some/deep/path?token=abc"] {
        let url = format!("{}{path}", server.url());
        let adapter = WebSocketClient::new(&url, ClientConfig::default()).unwrap();
        let client = Repo::builder().network(adapter).start().await.unwrap();
        client
            .wait_for_peer(server.repo().peer_id(), PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let doc = client.create_empty().await.unwrap();
        let found = server.repo().find(doc.url()).await.unwrap();
        assert_eq!(found.heads().unwrap(), doc.heads().unwrap());
        client.shutdown().await;
    }
    server.shutdown().await;
}
