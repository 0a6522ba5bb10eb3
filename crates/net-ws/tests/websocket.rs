//! tandem clients and a tandem server over real loopback sockets: sync through the server,
//! reconnecting after a restart, health probes, and clients that misbehave.

use std::time::Duration;

use automerge::sync::SyncDoc;
use automerge::{transaction::Transactable, ReadDoc, ROOT};
use futures::{SinkExt, StreamExt};
use tandem_core::{DocumentId, Message, PeerId, PeerMetadata, SyncMessage};
use tandem_net_ws::{
    ClientConfig, ConnectionState, ServerConfig, WebSocketClient, WebSocketServer,
};
use tandem_repo::{AskOnly, Repo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as Frame;

const PATIENCE: Duration = Duration::from_secs(20);

async fn server_with(config: ServerConfig) -> (Repo, String) {
    let server = WebSocketServer::bind("127.0.0.1:0", config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let repo = Repo::builder()
        .share_policy(AskOnly)
        .network(server)
        .start()
        .await
        .unwrap();
    (repo, format!("ws://{addr}"))
}

/// A client repo of `server` at `url`, once each has registered the other as a peer (the
/// client is online a moment before the server's repo has taken the connection in; a `find`
/// on the server meanwhile would ask nobody).
async fn client(server: &Repo, url: &str) -> (Repo, tokio::sync::watch::Receiver<ConnectionState>) {
    let adapter = WebSocketClient::new(url, fast_retry()).unwrap();
    let mut states = adapter.states();
    let repo = Repo::builder().network(adapter).start().await.unwrap();
    online(&mut states).await;
    repo.wait_for_peer(server.peer_id(), PATIENCE)
        .await
        .expect("the server never became a peer");
    server
        .wait_for_peer(repo.peer_id(), PATIENCE)
        .await
        .expect("the client never became the server's peer");
    (repo, states)
}

fn fast_retry() -> ClientConfig {
    ClientConfig {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        // Every test also checks that frequent client pings do not disturb a live connection.
        keepalive_interval: Some(Duration::from_millis(50)),
        ..ClientConfig::default()
    }
}

async fn online(states: &mut tokio::sync::watch::Receiver<ConnectionState>) {
    tokio::time::timeout(PATIENCE, states.wait_for(|s| *s == ConnectionState::Online))
        .await
        .expect("never online")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_a_document_through_the_server() {
    let (server, url) = server_with(ServerConfig::default()).await;
    let (alice, mut alice_state) = client(&server, &url).await;
    let (bob, mut bob_state) = client(&server, &url).await;
    online(&mut alice_state).await;
    online(&mut bob_state).await;

    server
        .wait_for_peer(alice.peer_id(), PATIENCE)
        .await
        .unwrap();
    let doc = alice
        .create_from(&serde_json::json!({"title": "hello", "items": [1, 2, 3]}))
        .await
        .unwrap();
    // A sync server does not ask its clients for documents: bob can find it once it is there.
    let on_server = server.find(doc.url()).await.unwrap();
    assert_eq!(on_server.heads().unwrap(), doc.heads().unwrap());
    let found = bob.find(doc.url()).await.unwrap();
    assert_eq!(found.heads().unwrap(), doc.heads().unwrap());

    // Edits flow both ways through the server.
    found
        .change(|tx| tx.put(ROOT, "title", "hello from bob"))
        .unwrap()
        .unwrap();
    let target = found.heads().unwrap();
    let mut changes = Box::pin(doc.changes());
    tokio::time::timeout(PATIENCE, async {
        while doc.heads().unwrap() != target {
            changes.next().await;
        }
    })
    .await
    .expect("alice never saw bob's edit");
    let title = doc
        .with_doc(|d| d.get(ROOT, "title").unwrap().unwrap().0.to_string())
        .unwrap();
    assert_eq!(title, "\"hello from bob\"");

    for repo in [alice, bob, server] {
        repo.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnects_after_the_server_restarts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let start_server = |listener| async move {
        Repo::builder()
            .share_policy(AskOnly)
            .network(WebSocketServer::from_listener(
                listener,
                ServerConfig::default(),
            ))
            .start()
            .await
            .unwrap()
    };
    let server = start_server(listener).await;
    let (alice, mut states) = client(&server, &format!("ws://{addr}")).await;
    online(&mut states).await;
    let server_peer = server.peer_id().clone();
    server.shutdown().await;
    tokio::time::timeout(PATIENCE, states.wait_for(|s| *s != ConnectionState::Online))
        .await
        .expect("never noticed the server went away")
        .unwrap();
    let mut peers = alice.peer_changes();
    tokio::time::timeout(PATIENCE, peers.wait_for(|p| !p.contains_key(&server_peer)))
        .await
        .expect("the old server stayed a peer")
        .unwrap();

    // The old server lets go of the port as its accept loop notices the repo is gone.
    let listener = tokio::time::timeout(PATIENCE, async {
        loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => return listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the port was never free again");
    let server = start_server(listener).await;
    online(&mut states).await;
    alice
        .wait_for_peer(server.peer_id(), PATIENCE)
        .await
        .unwrap();
    alice.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_get_is_answered_as_a_health_probe() {
    let (server, url) = server_with(ServerConfig::default()).await;
    let addr = url.trim_start_matches("ws://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("tandem is running\n"), "{response}");
    server.shutdown().await;
}

/// A raw WebSocket that has joined as `peer`.
async fn joined(
    url: &str,
    peer: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let join = tandem_core::network::handshake::join(&tandem_core::LocalPeer {
        peer_id: PeerId::from(peer),
        metadata: PeerMetadata::default(),
    });
    ws.send(Frame::binary(join.encode())).await.unwrap();
    let answer = next_message(&mut ws).await.expect("no answer to join");
    assert_eq!(answer.type_name(), "peer");
    ws
}

/// The next repo message on a raw socket; `None` once it closes.
async fn next_message<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(Frame::Binary(bytes))) => return Some(Message::decode(&bytes).unwrap()),
                Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("socket neither answered nor closed")
}

/// A `request` for `document` from a peer that has nothing of it.
fn request(sender: &str, target: &PeerId, document: &DocumentId) -> Message {
    let mut empty = automerge::sync::State::new();
    let data = automerge::AutoCommit::new()
        .sync()
        .generate_sync_message(&mut empty)
        .expect("an empty document always has something to say")
        .encode();
    Message::Request(SyncMessage {
        sender_id: PeerId::from(sender),
        target_id: target.clone(),
        document_id: document.clone(),
        data: tandem_core::MessageData::new(data).unwrap(),
    })
}

fn cbor_map(bytes: &[u8]) -> ciborium::Value {
    ciborium::de::from_reader(bytes).expect("a CBOR value")
}

fn cbor_bytes(value: &ciborium::Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(value, &mut bytes).expect("encodable");
    bytes
}

/// Replaces one field of a CBOR map.
fn set_field(map: &mut ciborium::Value, name: &str, value: ciborium::Value) {
    let ciborium::Value::Map(entries) = map else {
        panic!("not a map: {map:?}")
    };
    let entry = entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(name))
        .unwrap_or_else(|| panic!("no field {name}"));
    entry.1 = value;
}

/// Whether the server closes the socket after `frame` (waiting for the close, with a timeout).
async fn closes_after(url: &str, frame: Frame) -> bool {
    let mut ws = joined(url, "mallory").await;
    ws.send(frame).await.unwrap();
    next_message(&mut ws).await.is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_only_the_offending_socket() {
    let config = ServerConfig {
        max_frame_size: 64 * 1024,
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (server, url) = server_with(config).await;
    let (honest, mut states) = client(&server, &url).await;
    online(&mut states).await;

    // Not CBOR; CBOR that is not a map (array, number, string); a map without a type; text.
    for bytes in [
        vec![0xff, 0x00, 0x13],
        vec![0x83, 0x01, 0x02, 0x03],
        vec![0x18, 0x2a],
        vec![0x63, b'a', b'b', b'c'],
        vec![0xa1, 0x61, b'x', 0x01],
    ] {
        assert!(
            closes_after(&url, Frame::binary(bytes.clone())).await,
            "{bytes:?}"
        );
    }
    assert!(closes_after(&url, Frame::text("{\"type\":\"join\"}")).await);
    // Truncated CBOR; a field of the wrong type; a document id that is not one; sync data that
    // is not an automerge sync message.
    let whole = request("mallory", server.peer_id(), &DocumentId::random()).encode();
    assert!(closes_after(&url, Frame::binary(whole[..whole.len() / 2].to_vec())).await);
    let mut wrong_type = cbor_map(&whole);
    set_field(
        &mut wrong_type,
        "documentId",
        ciborium::Value::Integer(42.into()),
    );
    assert!(closes_after(&url, Frame::binary(cbor_bytes(&wrong_type))).await);
    let mut bad_id = cbor_map(&whole);
    set_field(
        &mut bad_id,
        "documentId",
        ciborium::Value::Text("not-an-id".into()),
    );
    assert!(closes_after(&url, Frame::binary(cbor_bytes(&bad_id))).await);
    let mut random_data = cbor_map(&whole);
    set_field(
        &mut random_data,
        "data",
        ciborium::Value::Bytes(vec![0x42, 0x13, 0x37, 0x00, 0xff]),
    );
    assert!(closes_after(&url, Frame::binary(cbor_bytes(&random_data))).await);
    // A frame over the limit.
    assert!(closes_after(&url, Frame::binary(vec![0u8; 65 * 1024])).await);

    // A request under another peer's id closes the socket: only ephemeral messages may carry
    // a sender other than the one the socket joined with (a relay forwards them).
    let spoofed = request("alice", server.peer_id(), &DocumentId::random());
    assert!(closes_after(&url, Frame::binary(spoofed.encode())).await);

    // A socket that never joins is closed after the handshake timeout.
    let (mut silent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert!(next_message(&mut silent).await.is_none());
    // Garbage instead of HTTP gets a 400 and a close.
    let mut raw = tokio::net::TcpStream::connect(url.trim_start_matches("ws://"))
        .await
        .unwrap();
    raw.write_all(b"\x16\x03\x01garbage\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, raw.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with(b"HTTP/1.1 400"));

    // Through all of it the honest client stayed connected and is served.
    assert_eq!(*states.borrow(), ConnectionState::Online);
    let (doc, _) = honest
        .create_with(|tx| tx.put(ROOT, "still", "here"))
        .await
        .unwrap();
    let on_server = server.find(doc.url()).await.unwrap();
    assert_eq!(on_server.heads().unwrap(), doc.heads().unwrap());
    honest.shutdown().await;
    server.shutdown().await;
}

/// A `sync` whose Bloom filter claims entries but has no bits (found by the `peer_messages`
/// fuzz target). automerge 0.12 divided by zero on it while answering, which took down the
/// document's worker on the server for everyone. Now its sender is cut off and the document goes
/// on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bloom_filter_bomb_cuts_off_its_sender_and_the_document_lives_on() {
    let (server, url) = server_with(ServerConfig::default()).await;
    let (honest, mut states) = client(&server, &url).await;
    online(&mut states).await;
    let (doc, _) = honest
        .create_with(|tx| tx.put(ROOT, "n", 1).unwrap())
        .await
        .unwrap();
    let on_server = server.find(doc.url()).await.unwrap();
    let mut changes = Box::pin(on_server.changes());
    // The fuzz input's first frame: two length bytes, then the sync data (cut short by the end
    // of the input, as the fuzz driver reads it).
    let input =
        include_bytes!("../../core/tests/fixtures/fuzz/peer_messages/bloom-without-bits.bin");
    let len = usize::from(u16::from_le_bytes([input[0], input[1]]));
    let bomb = Message::Sync(SyncMessage {
        sender_id: PeerId::from("mallory"),
        target_id: server.peer_id().clone(),
        document_id: doc.document_id().clone(),
        data: tandem_core::MessageData::new(input[2..(2 + len).min(input.len())].to_vec()).unwrap(),
    });
    assert!(closes_after(&url, Frame::binary(bomb.encode())).await);
    doc.change(|tx| tx.put(ROOT, "n", 2).unwrap()).unwrap();
    let target = doc.heads().unwrap();
    tokio::time::timeout(PATIENCE, async {
        while let Some(change) = changes.next().await {
            if change.heads == target {
                return;
            }
        }
        panic!("the server's document stopped")
    })
    .await
    .expect("the server's document took the honest change");
    honest.shutdown().await;
    server.shutdown().await;
}

/// Changes automerge 0.12 panics on, or takes and then cannot write back (so the document's
/// next snapshot would never load), sent by a peer to a document the server holds: the sender
/// is cut off, and the server's document keeps its content, takes honest changes and saves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_automerge_cannot_take_cut_off_their_sender_and_spoil_nothing() {
    let (server, url) = server_with(ServerConfig::default()).await;
    let (honest, mut states) = client(&server, &url).await;
    online(&mut states).await;
    let (doc, _) = honest
        .create_with(|tx| tx.put(ROOT, "n", 1).unwrap())
        .await
        .unwrap();
    let on_server = server.find(doc.url()).await.unwrap();
    let mut changes = Box::pin(on_server.changes());
    let fixtures: [&[u8]; 2] = [
        include_bytes!("../../core/tests/fixtures/untrusted/panics.change"),
        include_bytes!("../../core/tests/fixtures/untrusted/unwritable.change"),
    ];
    for (i, bytes) in fixtures.into_iter().enumerate() {
        let mallory = format!("mallory-{i}");
        let data = automerge::sync::Message {
            heads: Vec::new(),
            need: Vec::new(),
            have: Vec::new(),
            changes: automerge::sync::ChunkList::from(vec![bytes.to_vec()]),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        }
        .encode();
        let poisoned = Message::Sync(SyncMessage {
            sender_id: PeerId::from(mallory.as_str()),
            target_id: server.peer_id().clone(),
            document_id: doc.document_id().clone(),
            data: tandem_core::MessageData::new(data).unwrap(),
        });
        let mut ws = joined(&url, &mallory).await;
        ws.send(Frame::binary(poisoned.encode())).await.unwrap();
        assert!(
            next_message(&mut ws).await.is_none(),
            "{mallory} was answered"
        );
    }
    doc.change(|tx| tx.put(ROOT, "n", 2).unwrap()).unwrap();
    let target = doc.heads().unwrap();
    tokio::time::timeout(PATIENCE, async {
        while let Some(change) = changes.next().await {
            if change.heads == target {
                return;
            }
        }
        panic!("the server's document stopped")
    })
    .await
    .expect("the server's document took the honest change");
    let saved = server.export(doc.url()).await.unwrap();
    let reloaded = automerge::Automerge::load(&saved).expect("the server's copy still loads");
    assert_eq!(reloaded.get_heads(), target);
    honest.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_version_is_refused_and_not_retried() {
    let (server, url) = server_with(ServerConfig::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let join = Message::Join(tandem_core::JoinMessage {
        sender_id: PeerId::from("future"),
        peer_metadata: PeerMetadata::default(),
        supported_protocol_versions: Some(vec!["2".into()]),
    });
    ws.send(Frame::binary(join.encode())).await.unwrap();
    let answer = next_message(&mut ws).await.expect("no answer");
    match answer {
        Message::Error(e) => assert_eq!(e.message, "unsupported protocol version"),
        other => panic!("expected error, got {other:?}"),
    }
    assert!(next_message(&mut ws).await.is_none(), "the server closes");
    assert!(server.peers().is_empty(), "no phantom peer, unlike JS");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gives_up_after_the_configured_attempts() {
    // A port nobody listens on: bind, note the port, close.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let adapter = WebSocketClient::new(
        format!("ws://{addr}"),
        ClientConfig {
            give_up_after: Some(3),
            ..fast_retry()
        },
    )
    .unwrap();
    let mut states = adapter.states();
    let repo = Repo::builder().network(adapter).start().await.unwrap();
    let state = tokio::time::timeout(
        PATIENCE,
        states.wait_for(|s| matches!(s, ConnectionState::Stopped(_))),
    )
    .await
    .expect("never gave up")
    .unwrap()
    .clone();
    assert_eq!(
        state,
        ConnectionState::Stopped("gave up after 3 failed attempts".into())
    );
    repo.shutdown().await;
}

/// Lets in `?token=alice-secret` as alice only; refuses everyone else.
struct TokenAuth;

#[async_trait::async_trait]
impl tandem_net_ws::Authenticate for TokenAuth {
    async fn authenticate(
        &self,
        request: &tandem_net_ws::UpgradeRequest,
    ) -> tandem_net_ws::Authentication {
        match request.query("token") {
            Some("alice-secret") => tandem_net_ws::Authentication::As(PeerId::from("alice")),
            _ => tandem_net_ws::Authentication::Refuse("token required".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_hook_refuses_strangers_and_binds_the_identity_it_authenticated() {
    let config = ServerConfig {
        authenticate: Some(std::sync::Arc::new(TokenAuth)),
        ..ServerConfig::default()
    };
    let (server, url) = server_with(config).await;
    // No token: the upgrade itself is refused.
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // alice's token, but joining as mallory: refused with `error`.
    let with_token = format!("{url}/?token=alice-secret");
    let (mut ws, _) = tokio_tungstenite::connect_async(&with_token).await.unwrap();
    let join = tandem_core::network::handshake::join(&tandem_core::LocalPeer {
        peer_id: PeerId::from("mallory"),
        metadata: PeerMetadata::default(),
    });
    ws.send(Frame::binary(join.encode())).await.unwrap();
    assert_eq!(next_message(&mut ws).await.unwrap().type_name(), "error");
    assert!(next_message(&mut ws).await.is_none());
    // As alice: accepted.
    let _alice = joined(&with_token, "alice").await;
    server
        .wait_for_peer(&PeerId::from("alice"), PATIENCE)
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_join_with_the_same_peer_id_takes_over() {
    let (server, url) = server_with(ServerConfig::default()).await;
    let (doc, _) = server
        .create_with(|tx| tx.put(ROOT, "on", "server"))
        .await
        .unwrap();
    let document_id = doc.document_id().clone();
    let mut first = joined(&url, "phone").await;
    let mut second = joined(&url, "phone").await;
    // The first socket is closed; the peer is served through the second.
    assert!(next_message(&mut first).await.is_none());
    second
        .send(Frame::binary(
            request("phone", server.peer_id(), &document_id).encode(),
        ))
        .await
        .unwrap();
    let answer = next_message(&mut second)
        .await
        .expect("the second socket was closed");
    match answer {
        Message::Sync(sync) => {
            assert_eq!(sync.document_id, document_id);
            assert_eq!(sync.target_id, PeerId::from("phone"));
        }
        other => panic!("expected the document, got {other:?}"),
    }
    assert!(server.peers().contains_key(&PeerId::from("phone")));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_answering_pings_is_dropped() {
    let config = ServerConfig {
        keepalive_interval: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let (server, url) = server_with(config).await;
    let (honest, mut states) = client(&server, &url).await;
    online(&mut states).await;
    // Joined, then never read again: pongs go out only while a socket is read.
    let _mute = joined(&url, "mute").await;
    let mut peers = server.peer_changes();
    tokio::time::timeout(
        PATIENCE,
        peers.wait_for(|p| p.contains_key(&PeerId::from("mute"))),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::timeout(
        PATIENCE,
        peers.wait_for(|p| !p.contains_key(&PeerId::from("mute"))),
    )
    .await
    .expect("the mute socket was never dropped")
    .unwrap();
    // The client that answers stayed through the same pings.
    assert!(server.peers().contains_key(honest.peer_id()));
    assert_eq!(*states.borrow(), ConnectionState::Online);
    honest.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_self_signed_certificate() {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = tandem_net_ws::rustls::pki_types::PrivateKeyDer::Pkcs8(
        generated.key_pair.serialize_der().into(),
    );
    let config = ServerConfig {
        tls: Some(tandem_net_ws::tls::server_config(vec![cert.clone()], key).unwrap()),
        ..ServerConfig::default()
    };
    let (server, url) = server_with(config).await;
    let url = url.replace("ws://", "wss://");

    // A client that trusts the certificate syncs.
    let trusting = WebSocketClient::new(
        url.as_str(),
        ClientConfig {
            tls: Some(tandem_net_ws::tls::client_config([cert]).unwrap()),
            ..fast_retry()
        },
    )
    .unwrap();
    let mut states = trusting.states();
    let alice = Repo::builder().network(trusting).start().await.unwrap();
    online(&mut states).await;
    // The server's peer message reaches alice before the server's repo has taken her in: wait
    // for that side too, or its find could ask nobody.
    server
        .wait_for_peer(alice.peer_id(), PATIENCE)
        .await
        .unwrap();
    let (doc, _) = alice
        .create_with(|tx| tx.put(ROOT, "secret", "over tls"))
        .await
        .unwrap();
    let on_server = server.find(doc.url()).await.unwrap();
    assert_eq!(on_server.heads().unwrap(), doc.heads().unwrap());

    // One that only trusts the web's roots never gets in.
    let wary = WebSocketClient::new(
        url.as_str(),
        ClientConfig {
            give_up_after: Some(2),
            ..fast_retry()
        },
    )
    .unwrap();
    let mut wary_states = wary.states();
    let bob = Repo::builder().network(wary).start().await.unwrap();
    tokio::time::timeout(
        PATIENCE,
        wary_states.wait_for(|s| matches!(s, ConnectionState::Stopped(_))),
    )
    .await
    .expect("the untrusting client kept trying")
    .unwrap();
    assert!(!server.peers().contains_key(bob.peer_id()));
    for repo in [alice, bob, server] {
        repo.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_idle_sockets_are_cut_at_the_handshake_deadline_while_others_are_served() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let (server, url) = server_with(config).await;
    let addr = url.trim_start_matches("ws://").to_owned();
    // 300 sockets that never say anything, and one that sends its request one byte at a time.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let dripping = tokio::spawn(async move {
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            .iter()
            .cycle()
        {
            if slow.write_all(&[*byte]).await.is_err() {
                return true; // cut off
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    });

    // Meanwhile a client joins and is served.
    let (honest, _states) = client(&server, &url).await;
    let (doc, _) = honest
        .create_with(|tx| tx.put(ROOT, "served", true))
        .await
        .unwrap();
    let on_server = tokio::time::timeout(PATIENCE, server.find(doc.url()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_server.heads().unwrap(), doc.heads().unwrap());

    // Every idle socket is closed by the server (end of stream, or a reset).
    for mut socket in idle {
        let mut buffer = [0u8; 16];
        let read = tokio::time::timeout(PATIENCE, socket.read(&mut buffer))
            .await
            .expect("an idle socket was kept open");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(tokio::time::timeout(PATIENCE, dripping)
        .await
        .unwrap()
        .unwrap());
    assert_eq!(server.peers().len(), 1);
    honest.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_timeout_covers_all_its_stages_together() {
    let timeout = Duration::from_millis(400);
    let config = ServerConfig {
        handshake_timeout: timeout,
        ..ServerConfig::default()
    };
    let (server, url) = server_with(config).await;
    // The upgrade arrives within the timeout and so does the join after it, but not both.
    let stream = tokio::net::TcpStream::connect(url.trim_start_matches("ws://"))
        .await
        .unwrap();
    tokio::time::sleep(timeout * 3 / 4).await;
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .expect("the upgrade was refused");
    tokio::time::sleep(timeout * 3 / 4).await;
    let join = tandem_core::network::handshake::join(&tandem_core::LocalPeer {
        peer_id: PeerId::from("dawdler"),
        metadata: PeerMetadata::default(),
    });
    let _ = ws.send(Frame::binary(join.encode())).await;
    assert!(
        next_message(&mut ws).await.is_none(),
        "a handshake slower than the timeout was accepted"
    );
    assert!(server.peers().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaves_a_server_that_goes_silent() {
    // A server that answers the join and then neither reads nor writes again, like a machine
    // that vanished without closing its sockets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (frozen_tx, frozen_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let join = next_message(&mut ws).await.expect("no join");
        let local = tandem_core::LocalPeer {
            peer_id: PeerId::from("frozen-server"),
            metadata: PeerMetadata::default(),
        };
        let tandem_core::network::handshake::ServerDecision::Accept { reply, .. } =
            tandem_core::network::handshake::answer_join(&local, &join, None)
        else {
            panic!("join refused")
        };
        ws.send(Frame::binary(reply.encode())).await.unwrap();
        let _ = frozen_tx.send(ws); // kept open, never polled again
        std::future::pending::<()>().await;
    });
    let adapter = WebSocketClient::new(format!("ws://{addr}"), fast_retry()).unwrap();
    let mut states = adapter.states();
    let repo = Repo::builder().network(adapter).start().await.unwrap();
    online(&mut states).await;
    let _frozen = frozen_rx.await.unwrap();
    tokio::time::timeout(PATIENCE, states.wait_for(|s| *s != ConnectionState::Online))
        .await
        .expect("the client stayed online with a silent server")
        .unwrap();
    let mut peers = repo.peer_changes();
    tokio::time::timeout(PATIENCE, peers.wait_for(|p| p.is_empty()))
        .await
        .expect("the silent server stayed a peer")
        .unwrap();
    repo.shutdown().await;
}
