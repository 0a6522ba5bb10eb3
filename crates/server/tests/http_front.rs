//! The HTTP front: health and readiness, and a WebSocket upgrade on any path.

use std::path::Path;
use std::time::Duration;

use crate::common::{client_built, client_of, join_as, nothing_to_sync};
use clap::Parser;
use tandem_net_ws::{ClientConfig, WebSocketClient};
use tandem_repo::Repo;
use tandem_server::{Options, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATIENCE: Duration = Duration::from_secs(30);

fn options(data_dir: &Path) -> Options {
    // As the binary parses its command line: every flag not given takes its default.
    Options::parse_from([
        "tandem-server",
        "--port",
        "0",
        "--data-dir",
        data_dir
            .to_str()
            .expect("a temporary directory has a UTF-8 path"),
    ])
}

/// The status code and body of `GET path`, over a fresh connection.
async fn get(server: &Server, path: &str) -> (u16, String) {
    get_at(server.local_addr(), path).await
}

/// [`get`] from any address.
async fn get_at(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    get_with(address, path, "").await
}

/// [`get_at`] with more header lines (each ending in `\r\n`).
async fn get_with(address: std::net::SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: tandem\r\n{headers}Connection: close\r\n\r\n");
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
    // Without --admin-token there is no admin API.
    assert_eq!(get(&server, "/v1/docs/anything").await.0, 404);

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
        // The server takes the connection in a moment after the client hears it.
        server
            .repo()
            .wait_for_peer(client.peer_id(), PATIENCE)
            .await
            .unwrap();
        let doc = client.create_empty().await.unwrap();
        let found = server.repo().find(doc.url()).await.unwrap();
        assert_eq!(found.heads().unwrap(), doc.heads().unwrap());
        client.shutdown().await;
    }
    server.shutdown().await;
}

const SECRET: &str = "correct horse battery staple";

fn token_for(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn secured_server(dir: &Path) -> Server {
    Server::start(&Options {
        auth_jwt_secret: Some(SECRET.into()),
        ..options(dir)
    })
    .await
    .unwrap()
}

/// The status line's code of a raw WebSocket upgrade request to `path_and_query`.
async fn upgrade_status(server: &Server, path_and_query: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: tandem\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut head))
        .await
        .expect("no response")
        .unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_without_a_valid_token_is_refused_before_it_happens() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path()).await;
    let good = token_for(
        SECRET,
        serde_json::json!({"exp": unix_now() + 3600, "docs": ["*"]}),
    );
    let forged = token_for(
        "another secret",
        serde_json::json!({"exp": unix_now() + 3600, "docs": ["*"]}),
    );
    let expired = token_for(
        SECRET,
        serde_json::json!({"exp": unix_now() - 10, "docs": ["*"]}),
    );
    let odd_access = token_for(
        SECRET,
        serde_json::json!({"exp": unix_now() + 3600, "docs": ["*"], "access": "admin"}),
    );
    assert_eq!(
        upgrade_status(&server, &format!("/?token={good}")).await,
        101
    );
    for refused in [
        "/".to_owned(),
        "/?token=".to_owned(),
        "/?token=not.a.token".to_owned(),
        format!("/?token={forged}"),
        format!("/?token={expired}"),
        format!("/?token={odd_access}"),
        format!(
            "/?token={}",
            token_for(SECRET, serde_json::json!({"docs": ["*"]}))
        ),
    ] {
        assert_eq!(upgrade_status(&server, &refused).await, 401, "{refused}");
    }
    let (_, metrics) = get(&server, "/metrics").await;
    let rejected = series(
        &metrics,
        "tandem_connections_rejected_total{reason=\"auth\"}",
    );
    assert_eq!(rejected, Some(7.0), "{metrics}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_grants_its_documents_and_no_more_and_read_only_is_read_only() {
    use automerge::transaction::Transactable;
    use automerge::{ReadDoc, ROOT};
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path()).await;
    let (granted, _) = server
        .repo()
        .create_with(|tx| tx.put(ROOT, "n", 1).unwrap())
        .await
        .unwrap();
    let other = server.repo().create_empty().await.unwrap();
    let token = token_for(
        SECRET,
        serde_json::json!({
            "exp": unix_now() + 3600,
            "docs": [granted.url().to_string()],
            "access": "read",
            "sub": "ada",
        }),
    );
    let url = format!("{}/sync?token={token}", server.url());
    let adapter = WebSocketClient::new(&url, ClientConfig::default()).unwrap();
    let client = Repo::builder()
        .peer_id("ada/tab-1")
        .network(adapter)
        .start()
        .await
        .unwrap();
    client
        .wait_for_peer(server.repo().peer_id(), PATIENCE)
        .await
        .unwrap();
    let at_client = client.find(granted.url()).await.unwrap();
    assert_eq!(at_client.heads().unwrap(), granted.heads().unwrap());
    assert!(matches!(
        client.find(other.url()).await,
        Err(tandem_repo::RepoError::Unavailable(_))
    ));

    // Read-only: the client's change never reaches the server's document. Its ephemeral
    // message, sent after the change on the same socket, tells when the server has seen both.
    let mut heard = Box::pin(granted.ephemeral_messages());
    at_client
        .change(|tx| tx.put(ROOT, "n", 2).unwrap())
        .unwrap();
    at_client.broadcast(&"after the change").await.unwrap();
    tokio::time::timeout(PATIENCE, heard.next())
        .await
        .expect("the ephemeral message never arrived");
    let n = granted
        .with_doc(|d| d.get(ROOT, "n").unwrap().unwrap().0.as_i64())
        .unwrap();
    assert_eq!(n, Some(1), "a read-only client's change was applied");
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_outside_the_tokens_subject_is_refused_and_an_expired_socket_is_closed() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path()).await;

    let ada = token_for(
        SECRET,
        serde_json::json!({"exp": unix_now() + 3600, "docs": ["*"], "sub": "ada"}),
    );
    let url = format!("{}/?token={ada}", server.url());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Frame::binary(join_as("adam"))).await.unwrap();
    let reply = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("no reply");
    let Some(Ok(Frame::Binary(bytes))) = reply else {
        panic!("{reply:?}");
    };
    let refused = tandem_core::Message::decode(&bytes).unwrap();
    assert_eq!(refused.type_name(), "error");

    // A token about to lapse: the socket is closed with the documented code when it does.
    let brief = token_for(
        SECRET,
        serde_json::json!({"exp": unix_now() + 2, "docs": ["*"], "sub": "ada"}),
    );
    let url = format!("{}/?token={brief}", server.url());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Frame::binary(join_as("ada"))).await.unwrap();
    assert_eq!(
        close_code(&mut ws).await,
        tandem_net_ws::CREDENTIALS_EXPIRED
    );
    server.shutdown().await;
}

/// A shutdown saves what the server holds, then closes every socket with 1001 (going away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_saves_then_closes_every_socket_as_going_away() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message as Frame;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&options(dir.path())).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    ws.send(Frame::binary(join_as("watcher"))).await.unwrap();
    let doc = server.repo().create_empty().await.unwrap();
    let heads = doc.heads().unwrap();
    let id = doc.document_id().clone();

    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(close_code(&mut ws).await, 1001);
    shutdown.await.unwrap();

    let again = Server::start(&options(dir.path())).await.unwrap();
    let found = again.repo().find(&id).await.unwrap();
    assert_eq!(found.heads().unwrap(), heads);
    again.shutdown().await;
}

/// The code of the close frame that ends `ws`.
async fn close_code<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> u16
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message as Frame;
    let closed = tokio::time::timeout(PATIENCE, async {
        while let Some(frame) = ws.next().await {
            if let Ok(Frame::Close(close)) = frame {
                return close;
            }
        }
        None
    })
    .await
    .expect("the socket was not closed");
    closed.expect("a close frame with a code").code.into()
}

/// Past `--max-connections` an upgrade is answered 503; once a client leaves, its slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_connection_limit_are_turned_away_until_one_leaves() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message as Frame;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&Options {
        max_connections: 2,
        ..options(dir.path())
    })
    .await
    .unwrap();
    let mut clients = Vec::new();
    for name in ["one", "two"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
            .await
            .unwrap();
        ws.send(Frame::binary(join_as(name))).await.unwrap();
        clients.push(ws);
    }
    assert_eq!(upgrade_status(&server, "/").await, 503);
    let (_, metrics) = get(&server, "/metrics").await;
    let rejected = series(
        &metrics,
        "tandem_connections_rejected_total{reason=\"limit\"}",
    );
    assert_eq!(rejected, Some(1.0), "{metrics}");
    assert_eq!(
        get(&server, "/healthz").await.0,
        200,
        "plain HTTP still served"
    );

    let mut leaving = clients.pop().unwrap();
    leaving.close(None).await.unwrap();
    // The slot frees once the server has seen the socket end.
    let admitted = tokio::time::timeout(PATIENCE, async {
        loop {
            match upgrade_status(&server, "/").await {
                101 => return,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert!(
        admitted.is_ok(),
        "the slot of a client that left was never freed"
    );
    server.shutdown().await;
}

/// The value of one series in a metrics text (`name` with its labels, as exported).
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `GET /metrics` exports every family from the start, and the values move with traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_from_the_start_and_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&Options {
        max_frame_size: 1 << 20,
        ..options(dir.path())
    })
    .await
    .unwrap();
    let (status, before) = get(&server, "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "tandem_connections",
        "tandem_documents_loaded",
        "tandem_documents_evicted_total",
        "tandem_messages_received_total{type=\"sync\"}",
        "tandem_messages_sent_total{type=\"sync\"}",
        "tandem_bytes_received_total",
        "tandem_bytes_sent_total",
        "tandem_storage_save_seconds_count",
        "tandem_storage_load_seconds_count",
        "tandem_durable_ack_wait_seconds_count",
        "tandem_connections_rejected_total{reason=\"auth\"}",
        "tandem_connections_rejected_total{reason=\"limit\"}",
        "tandem_connections_rejected_total{reason=\"frame_size\"}",
        "tandem_connections_rejected_total{reason=\"protocol\"}",
        "tandem_connections_cut_off_total{reason=\"not_reading\"}",
        "tandem_connections_cut_off_total{reason=\"ephemeral_flood\"}",
        "tandem_ephemeral_dropped_total",
        "tandem_changes_refused_total{reason=\"change\"}",
        "tandem_changes_refused_total{reason=\"document\"}",
        "tandem_storage_errors_total{operation=\"save\"}",
        "tandem_storage_failing",
    ] {
        assert!(
            series(&before, name).is_some(),
            "{name} missing from\n{before}"
        );
    }
    assert_eq!(series(&before, "tandem_connections"), Some(0.0));

    let client = client_of(&server).await;
    let doc = client.create_empty().await.unwrap();
    server.repo().find(doc.url()).await.unwrap();
    server.repo().flush().await.unwrap();
    // A frame over the size limit, and a text frame: each socket is closed, and counted.
    for frame in [
        tokio_tungstenite::tungstenite::Message::binary(vec![0u8; 2 << 20]),
        tokio_tungstenite::tungstenite::Message::text("not cbor"),
    ] {
        use futures::{SinkExt, StreamExt};
        let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
            .await
            .unwrap();
        let _ = ws.send(frame).await;
        // Read until the server has closed it.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PATIENCE, ws.next()).await {}
    }

    let (_, after) = get(&server, "/metrics").await;
    let moved =
        |name: &str| series(&after, name).unwrap_or(0.0) > series(&before, name).unwrap_or(0.0);
    assert_eq!(series(&after, "tandem_connections"), Some(1.0));
    for name in [
        "tandem_documents_loaded",
        "tandem_messages_received_total{type=\"sync\"}",
        "tandem_messages_sent_total{type=\"sync\"}",
        "tandem_bytes_received_total",
        "tandem_bytes_sent_total",
        "tandem_storage_save_seconds_count",
        "tandem_storage_load_seconds_count",
        "tandem_durable_ack_wait_seconds_count",
        "tandem_connections_rejected_total{reason=\"frame_size\"}",
        "tandem_connections_rejected_total{reason=\"protocol\"}",
    ] {
        assert!(moved(name), "{name} did not move:\n{after}");
    }
    client.shutdown().await;
    server.shutdown().await;
}

/// With `--metrics-listen`, `/metrics` is served there and not on the main port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_may_have_a_port_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&Options {
        metrics_listen: Some("127.0.0.1:0".into()),
        ..options(dir.path())
    })
    .await
    .unwrap();
    let address = server.metrics_addr().expect("a metrics address");
    let (status, text) = get_at(address, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(series(&text, "tandem_connections"), Some(0.0), "{text}");
    assert_eq!(get(&server, "/metrics").await.0, 404);
    server.shutdown().await;
}

/// A client that stops reading is disconnected once more than `--max-outbound-bytes` wait for
/// it; the client whose messages piled up for it goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_past_the_outbound_bound() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&Options {
        max_outbound_bytes: 1 << 20,
        ..options(dir.path())
    })
    .await
    .unwrap();
    let writer = client_of(&server).await;
    let doc = writer.create_empty().await.unwrap();
    writer.flush().await.unwrap();

    // A raw client asks for the document (so it hears its ephemeral messages), then reads
    // nothing more.
    let (mut stuck, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    stuck.send(Frame::binary(join_as("stuck"))).await.unwrap();
    let Some(Ok(Frame::Binary(_peer))) =
        tokio::time::timeout(PATIENCE, stuck.next()).await.unwrap()
    else {
        panic!("no peer message");
    };
    let request = tandem_core::Message::Request(tandem_core::SyncMessage {
        sender_id: "stuck".into(),
        target_id: server.repo().peer_id().clone(),
        document_id: doc.document_id().clone(),
        data: tandem_core::MessageData::new(nothing_to_sync()).unwrap(),
    });
    stuck.send(Frame::binary(request.encode())).await.unwrap();
    server
        .repo()
        .wait_for_peer(&"stuck".into(), PATIENCE)
        .await
        .unwrap();

    // 32 MB of ephemeral messages for it, far more than socket buffers hold.
    let blob = vec![7u8; 64 << 10];
    for _ in 0..500 {
        doc.broadcast(&serde_bytes_like(&blob)).await.unwrap();
    }
    // Well before the socket's own write timeout (twice the 5 s keepalive) would close it.
    let mut peers = server.repo().peer_changes();
    tokio::time::timeout(
        Duration::from_secs(5),
        peers.wait_for(|peers| !peers.contains_key(&"stuck".into())),
    )
    .await
    .expect("the client that does not read was not cut off by the bound")
    .unwrap();
    // The writer is still served.
    assert!(server.repo().peers().contains_key(writer.peer_id()));
    let (_, metrics) = get(&server, "/metrics").await;
    assert_eq!(
        series(
            &metrics,
            "tandem_connections_cut_off_total{reason=\"not_reading\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    writer.shutdown().await;
    server.shutdown().await;
}

/// A value that encodes as a CBOR byte string.
fn serde_bytes_like(bytes: &[u8]) -> ciborium::Value {
    ciborium::Value::Bytes(bytes.to_vec())
}

/// `--max-ephemeral-burst` and `--max-ephemeral-per-second` bound what one client relays: of 50
/// ephemeral messages sent at once, the other client hears the burst, and the rest are dropped
/// and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_messages_past_the_configured_rate_are_dropped_and_counted() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&Options {
        max_ephemeral_burst: 5,
        max_ephemeral_per_second: 1,
        ..options(dir.path())
    })
    .await
    .unwrap();
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(client_of(&server).await);
    }
    let sender = clients[0].create_empty().await.unwrap();
    clients[0].flush().await.unwrap();
    let listener = clients[1].find(sender.url()).await.unwrap();
    let mut heard = Box::pin(listener.ephemeral_messages());
    for n in 0..50u32 {
        sender.broadcast(&n).await.unwrap();
    }
    // Every message is either relayed or dropped: count both until they add up.
    let (mut relayed, mut dropped) = (0.0, 0.0);
    tokio::time::timeout(PATIENCE, async {
        while relayed + dropped < 50.0 {
            tokio::select! {
                Some(_) = heard.next() => relayed += 1.0,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    let (_, metrics) = get(&server, "/metrics").await;
                    dropped = series(&metrics, "tandem_ephemeral_dropped_total").unwrap_or(0.0);
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{relayed} relayed and {dropped} dropped of 50"));
    assert!((5.0..=6.0).contains(&relayed), "{relayed} relayed");
    for client in clients {
        client.shutdown().await;
    }
    server.shutdown().await;
}

/// The admin API answers for what the server holds: a document only a client has is not found,
/// and asking does not make the server fetch it from that client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_does_not_fetch_what_only_a_client_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&Options {
        admin_token: Some("secret".into()),
        ..options(dir.path())
    })
    .await
    .unwrap();
    // Offers the server nothing, but gives what it is asked for.
    let client = client_built(&server, Repo::builder().share_policy(tandem_repo::AskOnly)).await;
    let doc = client.create_empty().await.unwrap();
    let path = format!("/v1/docs/{}", doc.document_id());
    let bearer = "Authorization: Bearer secret\r\n";
    let mut events = Box::pin(server.repo().events());
    assert_eq!(get_with(server.local_addr(), &path, bearer).await.0, 404);
    // Looked for in storage only, it leaves memory at once; a find that asked the client would
    // keep it, waiting for the client's answer.
    tokio::time::timeout(PATIENCE, async {
        use futures::StreamExt;
        while let Some(event) = events.next().await {
            if event == tandem_repo::RepoEvent::Unloaded(doc.document_id().clone()) {
                return;
            }
        }
    })
    .await
    .expect("the document stayed in the server's memory");
    assert_eq!(get_with(server.local_addr(), &path, bearer).await.0, 404);
    client.shutdown().await;
    server.shutdown().await;
}
