//! The facade re-exports the vocabulary at its root and the adapters behind their features, and
//! the pieces it joins work together: a message survives an in-memory connection, a chunk
//! survives in-memory storage.

use futures::{SinkExt, StreamExt};
use tandem::storage_mem::MemoryStorage;
use tandem::{
    ChunkKey, Connection, DocumentId, LocalPeer, Message, MessageData, PeerMetadata,
    StorageAdapter, StorageId, SyncMessage,
};

#[tokio::test]
async fn a_sync_message_and_a_chunk_travel_through_the_facade() {
    let mut doc = automerge::AutoCommit::new();
    automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "title", "hello").unwrap();
    let document_id = DocumentId::random();

    let alice = LocalPeer {
        peer_id: "alice".into(),
        metadata: PeerMetadata::default(),
    };
    let bob = LocalPeer {
        peer_id: "bob".into(),
        metadata: PeerMetadata {
            storage_id: Some(StorageId::random()),
            is_ephemeral: false,
        },
    };
    let (mut at_alice, mut at_bob) = Connection::in_memory_pair(&alice, &bob, 4);
    assert_eq!(at_bob.remote.metadata, alice.metadata);

    let mut state = automerge::sync::State::new();
    let first = automerge::sync::SyncDoc::generate_sync_message(&doc.sync(), &mut state)
        .expect("a first message");
    let message = Message::Sync(SyncMessage {
        sender_id: alice.peer_id.clone(),
        target_id: bob.peer_id.clone(),
        document_id: document_id.clone(),
        data: MessageData::new(first.encode()).unwrap(),
    });
    // Over the wire format and back, then over the in-memory connection.
    let message = Message::decode(&message.encode()).expect("round trip");
    at_alice.outgoing.send(message.clone()).await.expect("send");
    let received = at_bob
        .incoming
        .next()
        .await
        .expect("a message")
        .expect("no error");
    assert_eq!(received, message);

    let storage = MemoryStorage::new();
    let snapshot = doc.save();
    let key = ChunkKey::snapshot(document_id.clone(), &doc.get_heads());
    storage
        .save(&key.to_storage_key(), snapshot.clone())
        .await
        .unwrap();
    let chunks = storage
        .load_range(&tandem::ChunkKind::Snapshot.prefix(&document_id))
        .await
        .unwrap();
    assert_eq!(chunks, vec![(key.to_storage_key(), snapshot)]);
}
