//! Presence between two repos: each sees the other's state and its updates, and a peer that
//! stops is forgotten at once (the goodbye), one that vanishes after the time to live.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Map, Value};
use tandem_core::PeerId;
use tandem_repo::presence::{PeerPresence, PresenceConfig};
use tandem_repo::Repo;

fn named(name: &str) -> Map<String, Value> {
    json!({ "name": name })
        .as_object()
        .cloned()
        .unwrap_or_default()
}

async fn wait_until(
    peers: &mut tokio::sync::watch::Receiver<BTreeMap<PeerId, PeerPresence>>,
    what: &str,
    ready: impl FnMut(&BTreeMap<PeerId, PeerPresence>) -> bool,
) {
    tokio::time::timeout(PATIENCE, peers.wait_for(ready))
        .await
        .unwrap_or_else(|_| panic!("never: {what}"))
        .expect("presence stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_see_each_others_presence_until_one_leaves() {
    let (alice, bob, link) = connected(Repo::builder(), Repo::builder()).await;
    let doc = alice.create_empty().await.unwrap();
    let at_bob = bob.find(doc.url()).await.unwrap();
    let config = PresenceConfig {
        heartbeat: Duration::from_millis(100),
        peer_ttl: Duration::from_millis(500),
    };
    let alices = doc.presence(config, named("alice"));
    let bobs = at_bob.presence(config, named("bob"));
    let (mut at_alice, mut at_bob_peers) = (alices.peer_changes(), bobs.peer_changes());
    let state_of = |peer: &Repo, name: &'static str| {
        let peer = peer.peer_id().clone();
        move |peers: &BTreeMap<PeerId, PeerPresence>| {
            peers.get(&peer).and_then(|p| p.state.get("name")) == Some(&json!(name))
        }
    };
    // Whoever started second was heard by the first, which answered with its own state.
    wait_until(&mut at_alice, "alice sees bob", state_of(&bob, "bob")).await;
    wait_until(
        &mut at_bob_peers,
        "bob sees alice",
        state_of(&alice, "alice"),
    )
    .await;

    bobs.broadcast("cursor", json!(3)).unwrap();
    let bob_id = bob.peer_id().clone();
    wait_until(&mut at_alice, "alice sees bob's cursor", |peers| {
        peers.get(&bob_id).and_then(|p| p.state.get("cursor")) == Some(&json!(3))
    })
    .await;

    // Bob says goodbye: alice forgets him at once.
    bobs.stop().await;
    wait_until(&mut at_alice, "alice forgets bob", |peers| peers.is_empty()).await;

    // A peer that vanishes without a goodbye goes after the time to live.
    let bobs = at_bob.presence(config, named("bob"));
    wait_until(&mut at_alice, "alice sees bob again", state_of(&bob, "bob")).await;
    link.cut();
    wait_until(&mut at_alice, "alice prunes silent bob", |peers| {
        peers.is_empty()
    })
    .await;
    drop(bobs);
    alices.stop().await;
    alice.shutdown().await;
    bob.shutdown().await;
}
