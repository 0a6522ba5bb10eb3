//! Frames a raw WebSocket client of the server sends, for the tests that speak the protocol
//! by hand.

/// The `join` frame of a client called `name`.
pub fn join_as(name: &str) -> Vec<u8> {
    tandem_net_ws::handshake::join(&tandem_core::LocalPeer {
        peer_id: name.into(),
        metadata: tandem_core::PeerMetadata::default(),
    })
    .encode()
}

/// The sync message of a peer that has no document: what a `request` carries.
pub fn nothing_to_sync() -> Vec<u8> {
    use automerge::sync::SyncDoc;
    automerge::Automerge::new()
        .generate_sync_message(&mut automerge::sync::State::new())
        .expect("a first sync message")
        .encode()
}
