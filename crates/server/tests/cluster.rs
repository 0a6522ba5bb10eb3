//! Servers on one PostgreSQL database form a cluster: they find each other in the database,
//! link, and a client on any node sees what clients on the others write.

use std::time::Duration;

use crate::common::{acknowledged, client_of};
use automerge::{transaction::Transactable, ReadDoc, ROOT};
use clap::Parser;
use futures::StreamExt;
use tandem_repo::DocHandle;
use tandem_server::{Options, Server};
use tandem_storage_postgres::TestPostgres;

const PATIENCE: Duration = Duration::from_secs(30);
const SECRET: &str = "cluster-secret";

/// A cluster node's options on the database at `url`.
pub(crate) fn node_options(url: &str) -> Options {
    Options::parse_from([
        "tandem-server",
        "--port",
        "0",
        "--postgres",
        url,
        "--cluster-advertise",
        "ws://127.0.0.1:0",
        "--cluster-secret",
        SECRET,
    ])
}

/// Waits until `doc` holds `key` = `value`.
async fn wait_for_value(doc: &DocHandle, key: &str, value: i64) {
    let mut changes = Box::pin(doc.changes());
    tokio::time::timeout(PATIENCE, async {
        loop {
            let now = doc
                .with_doc(|d| {
                    d.get(ROOT, key)
                        .ok()
                        .flatten()
                        .and_then(|(v, _)| v.as_i64())
                })
                .unwrap();
            if now == Some(value) {
                return;
            }
            changes.next().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{key} never became {value}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_link_and_clients_on_different_nodes_see_each_others_changes() {
    let postgres = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = postgres.database().await.unwrap();
    let a = Server::start(&node_options(&url)).await.unwrap();
    let b = Server::start(&node_options(&url)).await.unwrap();
    // Each finds the other in the database and one dials the other.
    a.repo()
        .wait_for_peer(b.repo().peer_id(), PATIENCE)
        .await
        .expect("node a never linked to node b");
    b.repo()
        .wait_for_peer(a.repo().peer_id(), PATIENCE)
        .await
        .expect("node b never linked to node a");

    let (alice, bob) = (client_of(&a).await, client_of(&b).await);
    let (doc, _) = alice.create_with(|tx| tx.put(ROOT, "n", 1)).await.unwrap();
    acknowledged(&doc, a.repo().storage_id().unwrap()).await;
    let theirs = bob.find(doc.url()).await.unwrap();
    wait_for_value(&theirs, "n", 1).await;
    for n in 2..=5 {
        doc.change(|tx| tx.put(ROOT, "n", n)).unwrap().unwrap();
        wait_for_value(&theirs, "n", n).await;
        theirs.change(|tx| tx.put(ROOT, "m", n)).unwrap().unwrap();
        wait_for_value(&doc, "m", n).await;
    }

    // Documents only node a's clients use stay out of node b's memory: node a tells node b
    // it holds them, and node b, with no client asking, declines. (Messages on the link are
    // handled in order, so once node b has relayed the next change of the shared document,
    // it has handled what node a said of the others.)
    let mut only_a = Vec::new();
    for _ in 0..5 {
        let (own, _) = alice
            .create_with(|tx| tx.put(ROOT, "own", 1))
            .await
            .unwrap();
        acknowledged(&own, a.repo().storage_id().unwrap()).await;
        only_a.push(own.document_id().clone());
    }
    doc.change(|tx| tx.put(ROOT, "n", 6)).unwrap().unwrap();
    wait_for_value(&theirs, "n", 6).await;
    let held_by_b = b.repo().documents().await.unwrap();
    assert!(
        only_a.iter().all(|id| !held_by_b.contains(id)),
        "node b holds documents no client of its uses"
    );

    // A node that leaves is dropped by the other at once.
    let mut peers = a.repo().peer_changes();
    let b_id = b.repo().peer_id().clone();
    bob.shutdown().await;
    b.shutdown().await;
    tokio::time::timeout(PATIENCE, peers.wait_for(|peers| !peers.contains_key(&b_id)))
        .await
        .expect("node a kept node b")
        .unwrap();
    alice.shutdown().await;
    a.shutdown().await;
}

/// Sorts `nodes` by peer id and waits until each is linked with every other; their ids.
async fn sorted_and_linked(nodes: &mut [(Server, Proxy)]) -> Vec<tandem_core::PeerId> {
    nodes.sort_by(|a, b| a.0.repo().peer_id().cmp(b.0.repo().peer_id()));
    let ids: Vec<_> = nodes
        .iter()
        .map(|(s, _)| s.repo().peer_id().clone())
        .collect();
    for (server, _) in nodes.iter() {
        for id in ids.iter().filter(|id| *id != server.repo().peer_id()) {
            server.repo().wait_for_peer(id, PATIENCE).await.unwrap();
        }
    }
    ids
}

/// A TCP proxy on 127.0.0.1 in front of one node (for the links of the others to it) or of the
/// database (for one node's connections): it can be cut (every connection through it closes,
/// new ones are refused) and healed.
struct Proxy {
    address: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    target: tokio::sync::watch::Sender<Option<std::net::SocketAddr>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        let (target, target_rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (mut cut, target) = (cut_rx.clone(), *target_rx.borrow());
                let Some(target) = target.filter(|_| !*cut.borrow()) else {
                    continue; // refused: dropped at once
                };
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy {
            address,
            cut,
            target,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.address)
    }
}

/// The node with the largest peer id (which every other node dials) is cut off from the others
/// by its proxy while clients on both sides write to one document; after the heal, everything
/// converges and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_converges_after_the_heal_and_loses_nothing() {
    let postgres = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = postgres.database().await.unwrap();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let proxy = Proxy::start().await;
        let mut options = node_options(&url);
        options.cluster_advertise = Some(proxy.url());
        let server = Server::start(&options).await.unwrap();
        proxy.target.send_replace(Some(server.local_addr()));
        nodes.push((server, proxy));
    }
    let ids = sorted_and_linked(&mut nodes).await;
    let (isolated, isolated_proxy) = &nodes[2];
    let (reachable, _) = &nodes[0];
    let storage = reachable.repo().storage_id().unwrap().clone();

    let (alice, bob) = (client_of(reachable).await, client_of(isolated).await);
    let (doc, _) = alice
        .create_with(|tx| tx.put(ROOT, "start", 0))
        .await
        .unwrap();
    acknowledged(&doc, &storage).await;
    let theirs = bob.find(doc.url()).await.unwrap();
    wait_for_value(&theirs, "start", 0).await;

    // Cut: the isolated node's links close, and its heartbeat goes on (the database is
    // reachable), so the others keep trying it.
    isolated_proxy.cut.send_replace(true);
    let mut isolated_peers = isolated.repo().peer_changes();
    tokio::time::timeout(
        PATIENCE,
        isolated_peers.wait_for(|peers| !ids.iter().any(|id| peers.contains_key(id))),
    )
    .await
    .expect("the isolated node kept a link")
    .unwrap();
    for n in 1..=10 {
        doc.change(|tx| tx.put(ROOT, format!("alice-{n}").as_str(), n))
            .unwrap()
            .unwrap();
        theirs
            .change(|tx| tx.put(ROOT, format!("bob-{n}").as_str(), n))
            .unwrap()
            .unwrap();
    }
    acknowledged(&doc, &storage).await;
    acknowledged(&theirs, &storage).await;
    // Neither side heard of the other's writes.
    assert!(theirs
        .with_doc(|d| d.get(ROOT, "alice-10").unwrap().is_none())
        .unwrap());

    // Heal: the links come back and both clients end with both sides' writes.
    isolated_proxy.cut.send_replace(false);
    wait_for_value(&theirs, "alice-10", 10).await;
    wait_for_value(&doc, "bob-10", 10).await;
    assert_eq!(doc.heads().unwrap(), theirs.heads().unwrap());
    let heads = doc.heads().unwrap();
    alice.shutdown().await;
    bob.shutdown().await;
    for (server, _) in nodes {
        server.shutdown().await;
    }

    // And the database holds all of it.
    let fresh = Server::start(&Options::parse_from([
        "tandem-server",
        "--port",
        "0",
        "--postgres",
        &url,
    ]))
    .await
    .unwrap();
    let reader = client_of(&fresh).await;
    let stored = reader.find(doc.url()).await.unwrap();
    assert_eq!(stored.heads().unwrap(), heads);
    reader.shutdown().await;
    fresh.shutdown().await;
}

/// `url` with its host and port replaced by `address`.
fn through(url: &str, address: std::net::SocketAddr) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let end = url[authority..]
        .find('/')
        .map_or(url.len(), |i| authority + i);
    let host = url[authority..end]
        .rfind('@')
        .map_or(authority, |i| authority + i + 1);
    format!("{}{address}{}", &url[..host], &url[end..])
}

/// The database's address in `url`.
async fn database_address(url: &str) -> std::net::SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("a TCP host is needed, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let address = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    address
}

/// A node that cannot reach the database stops beating; every other node drops it, whichever
/// of them dialled (the node between the others by peer id dials one and is dialled by the
/// other), and links with it again once it beats again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_is_dropped_and_linked_again_after() {
    let postgres = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = postgres.database().await.unwrap();
    let database = database_address(&url).await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let proxy = Proxy::start().await;
        proxy.target.send_replace(Some(database));
        let server = Server::start(&node_options(&through(&url, proxy.address)))
            .await
            .unwrap();
        nodes.push((server, proxy));
    }
    let ids = sorted_and_linked(&mut nodes).await;
    let (middle, middle_database) = &nodes[1];
    let silent = middle.repo().peer_id().clone();

    middle_database.cut.send_replace(true);
    for (server, _) in [&nodes[0], &nodes[2]] {
        let mut peers = server.repo().peer_changes();
        tokio::time::timeout(
            PATIENCE,
            peers.wait_for(|peers| !peers.contains_key(&silent)),
        )
        .await
        .unwrap_or_else(|_| panic!("{} kept the silent node", server.repo().peer_id()))
        .unwrap();
    }
    // The two that still beat stay linked.
    nodes[0]
        .0
        .repo()
        .wait_for_peer(&ids[2], PATIENCE)
        .await
        .unwrap();

    middle_database.cut.send_replace(false);
    for (server, _) in [&nodes[0], &nodes[2]] {
        server
            .repo()
            .wait_for_peer(&silent, PATIENCE)
            .await
            .expect("the node was not linked again once it beat again");
    }
    for (server, _) in nodes {
        server.shutdown().await;
    }
}

/// Nodes full of clients (`--max-connections`; here no room at all) still take each other's
/// links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_full_of_clients_still_link_to_each_other() {
    let postgres = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = postgres.database().await.unwrap();
    let full = || Options {
        max_connections: 0,
        ..node_options(&url)
    };
    let (a, b) = (
        Server::start(&full()).await.unwrap(),
        Server::start(&full()).await.unwrap(),
    );
    a.repo()
        .wait_for_peer(b.repo().peer_id(), PATIENCE)
        .await
        .expect("the nodes never linked");
    b.shutdown().await;
    a.shutdown().await;
}
