//! The conformance suite for [`NetworkAdapter`] implementations.
//!
//! Every transport runs [`run_all`] in its tests with a factory that returns two fresh adapters
//! that will reach each other once started (an in-memory pair; a server and a client pointed at
//! it). Each check starts both, takes the first connection each yields, and checks what the
//! repo relies on: each end knows who is at the other; messages of every kind arrive whole,
//! unchanged and in order, both ways at once; a large message arrives whole; closing one end
//! ends the other's stream. The suite needs no runtime of its own; a check that waits forever
//! is a failure, so callers run it under a timeout. Failures panic with a message naming the
//! broken rule.

use std::future::Future;

use futures::{SinkExt, StreamExt};

use super::{Connection, Connections, LocalPeer, NetworkAdapter};
use crate::{
    DocUnavailableMessage, DocumentId, EphemeralMessage, Message, MessageData, PeerId,
    PeerMetadata, SessionId, StorageId, SyncMessage,
};

/// Two adapters that reach each other once started.
pub type AdapterPair = (Box<dyn NetworkAdapter>, Box<dyn NetworkAdapter>);

/// Runs every check, each on a fresh pair from `fresh`.
pub async fn run_all<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AdapterPair>,
{
    each_end_knows_the_other(fresh().await).await;
    messages_arrive_unchanged_and_in_order_both_ways(fresh().await).await;
    a_large_message_arrives_whole(fresh().await).await;
    closing_one_end_ends_the_other(fresh().await).await;
}

fn first() -> LocalPeer {
    LocalPeer {
        peer_id: PeerId::from("conformance-first"),
        metadata: PeerMetadata {
            storage_id: Some(StorageId::from("conformance-store")),
            is_ephemeral: false,
        },
    }
}

fn second() -> LocalPeer {
    LocalPeer {
        peer_id: PeerId::from("conformance-second"),
        metadata: PeerMetadata {
            storage_id: None,
            is_ephemeral: true,
        },
    }
}

/// Both adapters started, with the first connection each yielded (and the streams of further
/// connections, which keep the adapters running).
struct Linked {
    at_first: Connection,
    at_second: Connection,
    _adapters: (Connections, Connections),
}

async fn link((a, b): AdapterPair) -> Linked {
    let mut from_a = a
        .start(first())
        .await
        .unwrap_or_else(|e| panic!("the first adapter did not start: {e}"));
    let mut from_b = b
        .start(second())
        .await
        .unwrap_or_else(|e| panic!("the second adapter did not start: {e}"));
    let (at_first, at_second) = futures::join!(from_a.next(), from_b.next());
    Linked {
        at_first: at_first.expect("the first adapter ended without a connection"),
        at_second: at_second.expect("the second adapter ended without a connection"),
        _adapters: (from_a, from_b),
    }
}

/// A message of each kind from `from` to `to`, told apart by `n`.
fn message(n: usize, from: &PeerId, to: &PeerId) -> Message {
    let document_id = DocumentId::from_random_bytes([(n % 251) as u8 + 1; 16]);
    let data = |len: usize| {
        // A CBOR byte string of `len` bytes: valid for every kind (ephemeral data must be CBOR).
        let mut bytes = vec![0x5a];
        bytes.extend((len as u32).to_be_bytes());
        bytes.extend((0..len).map(|i| (i * 31 + n) as u8));
        MessageData::new(bytes).expect("not empty")
    };
    let sync = |len| SyncMessage {
        sender_id: from.clone(),
        target_id: to.clone(),
        document_id: document_id.clone(),
        data: data(len),
    };
    match n % 4 {
        0 => Message::Sync(sync(n * 13 % 2000)),
        1 => Message::Request(sync(8)),
        2 => Message::DocUnavailable(DocUnavailableMessage {
            sender_id: from.clone(),
            target_id: to.clone(),
            document_id,
        }),
        _ => Message::Ephemeral(EphemeralMessage {
            sender_id: from.clone(),
            target_id: to.clone(),
            document_id,
            data: data(n % 64),
            count: n as u64 + 1,
            session_id: SessionId::from_random(7),
        }),
    }
}

/// Each end's connection names the peer at the other end, with the metadata it started with.
pub async fn each_end_knows_the_other(pair: AdapterPair) {
    let linked = link(pair).await;
    for (end, connection, expected) in [
        ("first", &linked.at_first, second()),
        ("second", &linked.at_second, first()),
    ] {
        let remote = (&connection.remote.peer_id, &connection.remote.metadata);
        assert_eq!(
            remote,
            (&expected.peer_id, &expected.metadata),
            "the {end} end does not know who is at the other, or what it said of itself"
        );
    }
}

/// Messages of every kind, sent both ways at once, arrive unchanged and in the order sent.
pub async fn messages_arrive_unchanged_and_in_order_both_ways(pair: AdapterPair) {
    const COUNT: usize = 200;
    let Linked {
        mut at_first,
        mut at_second,
        _adapters,
    } = link(pair).await;
    let (a, b) = (first().peer_id, second().peer_id);
    let to_b: Vec<Message> = (0..COUNT).map(|n| message(n, &a, &b)).collect();
    let to_a: Vec<Message> = (0..COUNT).map(|n| message(n + COUNT, &b, &a)).collect();
    let (sent_a, sent_b, got_at_b, got_at_a) = futures::join!(
        send(&mut at_first.outgoing, to_b.clone()),
        send(&mut at_second.outgoing, to_a.clone()),
        receive(&mut at_second.incoming, COUNT),
        receive(&mut at_first.incoming, COUNT),
    );
    sent_a.unwrap_or_else(|e| panic!("the first end could not send: {e}"));
    sent_b.unwrap_or_else(|e| panic!("the second end could not send: {e}"));
    assert!(
        got_at_b == to_b,
        "messages to the second end changed or reordered"
    );
    assert!(
        got_at_a == to_a,
        "messages to the first end changed or reordered"
    );
}

async fn send(
    sink: &mut super::MessageSink,
    messages: Vec<Message>,
) -> Result<(), super::NetworkError> {
    let mut all = futures::stream::iter(messages.into_iter().map(Ok));
    sink.send_all(&mut all).await
}

async fn receive(stream: &mut super::MessageStream, count: usize) -> Vec<Message> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        match stream.next().await {
            Some(Ok(message)) => got.push(message),
            Some(Err(error)) => panic!("a connection failed while messages flowed: {error}"),
            None => panic!("a connection ended after {} of {count} messages", got.len()),
        }
    }
    got
}

/// A sync message of 4 MiB (a whole document) arrives whole.
pub async fn a_large_message_arrives_whole(pair: AdapterPair) {
    let Linked {
        mut at_first,
        mut at_second,
        _adapters,
    } = link(pair).await;
    let mut bytes = vec![0x5a];
    let len: usize = 4 << 20;
    bytes.extend((len as u32).to_be_bytes());
    bytes.extend((0..len).map(|i| (i % 253) as u8));
    let large = Message::Sync(SyncMessage {
        sender_id: first().peer_id,
        target_id: second().peer_id,
        document_id: DocumentId::from_random_bytes([9; 16]),
        data: MessageData::new(bytes).expect("not empty"),
    });
    let (sent, got) = futures::join!(
        at_first.outgoing.send(large.clone()),
        at_second.incoming.next()
    );
    sent.unwrap_or_else(|e| panic!("a large message could not be sent: {e}"));
    match got {
        Some(Ok(message)) => assert!(message == large, "a large message arrived changed"),
        Some(Err(error)) => panic!("a large message broke the connection: {error}"),
        None => panic!("the connection ended instead of carrying a large message"),
    }
}

/// Dropping one end's connection ends the other end's stream.
pub async fn closing_one_end_ends_the_other(pair: AdapterPair) {
    let Linked {
        at_first,
        mut at_second,
        _adapters,
    } = link(pair).await;
    drop(at_first);
    loop {
        match at_second.incoming.next().await {
            None | Some(Err(_)) => return,
            Some(Ok(_)) => continue,
        }
    }
}
