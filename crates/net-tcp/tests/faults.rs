//! A TCP server closes a connection that misbehaves (an oversized frame, a frame that is not a
//! message, no `join` in time, a `join` as the server itself) and only that one: a well-behaved
//! client connected all along still syncs afterwards.

use std::time::Duration;

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tandem_core::network::handshake::join;
use tandem_core::{LocalPeer, Message, PeerId, PeerMetadata};
use tandem_net_tcp::{ClientConfig, Endpoint, ServerConfig, TcpClient, TcpServer};
use tandem_repo::Repo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const PATIENCE: Duration = Duration::from_secs(30);
const MAX_FRAME: usize = 1024 * 1024;

/// Reads until the server closes the connection; fails if it does not within [`PATIENCE`].
async fn closed_by_server(stream: &mut TcpStream, what: &str) {
    let mut buffer = vec![0u8; 64 * 1024];
    let reading = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(PATIENCE, reading)
        .await
        .unwrap_or_else(|_| panic!("the server kept a connection that {what}"));
}

/// A raw connection that sent a `join` as `name`, and the type of the server's answer.
async fn join_as(
    addr: &str,
    name: &PeerId,
) -> (Framed<TcpStream, LengthDelimitedCodec>, &'static str) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let local = LocalPeer {
        peer_id: name.clone(),
        metadata: PeerMetadata::default(),
    };
    framed
        .send(Bytes::from(join(&local).encode()))
        .await
        .expect("send join");
    let answer = tokio::time::timeout(PATIENCE, framed.next())
        .await
        .expect("an answer in time")
        .expect("an answer")
        .expect("a frame");
    let kind = Message::decode(&answer).expect("a message").type_name();
    (framed, kind)
}

/// A raw connection that has joined as `name`, with the server's `peer` read.
async fn joined(addr: &str, name: &str) -> Framed<TcpStream, LengthDelimitedCodec> {
    let (framed, kind) = join_as(addr, &PeerId::from(name)).await;
    assert_eq!(kind, "peer");
    framed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_connection_is_closed_and_the_others_go_on() {
    let config = ServerConfig {
        max_frame_size: MAX_FRAME,
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = TcpServer::bind("127.0.0.1:0", config).await.expect("bind");
    let endpoint = server.local_endpoint().expect("bound");
    let Endpoint::Tcp(addr) = endpoint.clone() else {
        unreachable!("bound to TCP");
    };
    let hub = Repo::builder()
        .network(server)
        .start()
        .await
        .expect("starts");
    let good = Repo::builder()
        .network(TcpClient::new(endpoint, ClientConfig::default()))
        .start()
        .await
        .expect("starts");
    good.wait_for_peer(hub.peer_id(), PATIENCE)
        .await
        .expect("the good client joins");

    // A length prefix of 4 GiB - 1, before the handshake: refused before anything is buffered.
    let mut huge = TcpStream::connect(addr.as_str()).await.expect("connect");
    huge.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .expect("write");
    closed_by_server(&mut huge, "announced a 4 GiB frame").await;

    // After the handshake: a frame just over the limit.
    let mut over = joined(&addr, "over-the-limit").await.into_inner();
    over.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
        .await
        .expect("write");
    closed_by_server(&mut over, "sent a frame over the limit").await;

    // A frame that is not CBOR, before and after the handshake.
    let mut garbage_first = Framed::new(
        TcpStream::connect(addr.as_str()).await.expect("connect"),
        LengthDelimitedCodec::new(),
    );
    garbage_first
        .send(Bytes::from_static(b"\xff\x00 not a message"))
        .await
        .expect("write");
    closed_by_server(garbage_first.get_mut(), "opened with garbage").await;
    let mut garbage_later = joined(&addr, "garbage-later").await;
    garbage_later
        .send(Bytes::from_static(b"\xa1\x61"))
        .await
        .expect("write");
    closed_by_server(garbage_later.get_mut(), "sent a truncated message").await;

    // Silence: no `join` within the handshake timeout.
    let mut silent = TcpStream::connect(addr.as_str()).await.expect("connect");
    closed_by_server(&mut silent, "never joined").await;

    // A `join` under the server's own peer id.
    let (mut impostor, answer) = join_as(&addr, hub.peer_id()).await;
    assert_eq!(answer, "error");
    closed_by_server(impostor.get_mut(), "joined as the server").await;

    // Through all of that, the good client stayed connected and still syncs.
    assert!(good.peers().contains_key(hub.peer_id()));
    let (doc, _) = hub
        .create_with(|tx| tx.put(ROOT, "still", "serving"))
        .await
        .expect("created");
    let found = tokio::time::timeout(PATIENCE, good.find(doc.url()))
        .await
        .expect("found in time")
        .expect("found");
    let value = found
        .with_doc(|d| {
            d.get(ROOT, "still")
                .ok()
                .flatten()
                .map(|(v, _)| v.to_string())
        })
        .expect("loaded");
    assert_eq!(value.as_deref(), Some("\"serving\""));
    good.shutdown().await;
    hub.shutdown().await;
}
