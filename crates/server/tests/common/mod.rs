//! What several server test files share: the frames a raw WebSocket client sends (for the
//! tests that speak the protocol by hand), and waiting for the server's acknowledgement.
#![allow(dead_code)]

use std::time::Duration;

mod server_process;

#[allow(unused_imports)]
pub use server_process::{kill_hard, start_server, stop_with, terminate, ServerProcess};

/// The `join` frame of a client called `name`.
pub fn join_as(name: &str) -> Vec<u8> {
    tandem_core::network::handshake::join(&tandem_core::LocalPeer {
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

/// Waits (up to 30 s) until the server reports, to `doc`'s repo, that its storage (`storage`)
/// holds `doc`'s current heads: the client's "synced" indicator.
pub async fn acknowledged(doc: &tandem_repo::DocHandle, storage: &tandem_core::StorageId) {
    use futures::StreamExt;
    let heads = doc.heads().unwrap();
    let mut events = Box::pin(doc.remote_heads_changes());
    tokio::time::timeout(Duration::from_secs(30), async {
        while doc.remote_heads(storage).map(|e| e.heads) != Some(heads.clone()) {
            events.next().await;
        }
    })
    .await
    .expect("the server never acknowledged our heads");
}

/// A tandem client of `server`, once each is the other's peer.
pub async fn client_of(server: &tandem_server::Server) -> tandem_repo::Repo {
    client_built(server, tandem_repo::Repo::builder()).await
}

/// [`client_of`], built from `builder`.
pub async fn client_built(
    server: &tandem_server::Server,
    builder: tandem_repo::RepoBuilder,
) -> tandem_repo::Repo {
    let patience = Duration::from_secs(30);
    let adapter =
        tandem_net_ws::WebSocketClient::new(server.url(), tandem_net_ws::ClientConfig::default())
            .unwrap();
    let client = builder.network(adapter).start().await.unwrap();
    client
        .wait_for_peer(server.repo().peer_id(), patience)
        .await
        .unwrap();
    server
        .repo()
        .wait_for_peer(client.peer_id(), patience)
        .await
        .unwrap();
    client
}

/// Which of `hashes` `doc` lacks.
pub fn lacking(
    doc: &automerge::Automerge,
    hashes: &[automerge::ChangeHash],
) -> Vec<automerge::ChangeHash> {
    use automerge::ReadDoc;
    hashes
        .iter()
        .filter(|h| doc.get_change_by_hash(h).is_none())
        .copied()
        .collect()
}
