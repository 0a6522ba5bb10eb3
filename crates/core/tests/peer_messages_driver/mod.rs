//! What the `peer_messages` fuzz target does with its input, shared with the regression test
//! that replays the inputs it found (`fuzz/fuzz_targets/peer_messages.rs` includes this file).

use automerge::transaction::Transactable;
use automerge::{Automerge, ReadDoc, ROOT};
use tandem_core::sync::{DocumentSync, EphemeralDedup, HandleState};
use tandem_core::{DocumentId, Message, PeerId, PeerMetadata};

/// A document's sync core receives whatever a peer sends, frame after frame (two length bytes,
/// then the frame): wire messages are dispatched as the repo dispatches them, and bytes that are
/// not a message are offered as sync data. Nothing may panic, and the document stays loadable.
pub fn feed_peer_messages(data: &[u8]) {
    let id = DocumentId::from_random_bytes([7; 16]);
    let (me, them) = (PeerId::from("me"), PeerId::from("them"));
    let metadata = PeerMetadata::default();
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "title", "held here")
        .expect("a fresh document takes a put");
    tx.commit();
    let mut sync = DocumentSync::new(id, me, HandleState::Ready);
    let _ = sync.add_peer(&doc, them.clone(), &metadata, None);
    let mut dedup = EphemeralDedup::default();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let (frame, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        let (sync_data, request) = match Message::decode(frame) {
            Ok(Message::Sync(m)) => (m.data.as_bytes().to_vec(), false),
            Ok(Message::Request(m)) => (m.data.as_bytes().to_vec(), true),
            Ok(Message::DocUnavailable(_)) => {
                let _ = sync.receive_doc_unavailable(&them);
                continue;
            }
            Ok(Message::Ephemeral(m)) => {
                let _ = dedup.accept(&m.sender_id, &m.session_id, m.count);
                continue;
            }
            Ok(_) => continue,
            Err(_) => (frame.to_vec(), false),
        };
        let _ = sync.receive_sync(&mut doc, &them, &metadata, None, &sync_data, request);
    }
    let _ = sync.remove_peer(&them);
    let reloaded = Automerge::load(&doc.save()).expect("the document saves and loads");
    assert_eq!(reloaded.get_heads(), doc.get_heads());
    assert!(reloaded.get(ROOT, "title").is_ok());
}
