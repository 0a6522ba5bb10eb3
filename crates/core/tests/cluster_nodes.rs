//! Nodes of a cluster on the virtual clock: two server nodes share one store and are linked as
//! cluster nodes; clients connect to either. A document open on both nodes stays in sync
//! through them, and a node holds only the documents its own clients use.

use std::time::Duration;

use crate::common::virtual_clock::{doc_with, value};
use automerge::transaction::Transactable;
use automerge::ROOT;
use tandem_core::document::DocumentConfig;
use tandem_core::testing::{LinkId, Network, Policy, SharedStore};
use tandem_core::DocumentId;

const IDLE: Duration = Duration::from_secs(60);

/// Two server nodes on one store (offering nothing, as a sync server), linked as a cluster,
/// and a client on each.
struct Cluster {
    network: Network,
    nodes: [usize; 2],
    clients: [usize; 2],
    client_links: [LinkId; 2],
}

fn cluster() -> Cluster {
    cluster_with(|_, _| {})
}

/// [`cluster`], with node `n`'s configuration changed by `configure(n, config)`.
fn cluster_with(configure: impl Fn(usize, &mut DocumentConfig)) -> Cluster {
    let mut network = Network::new();
    let store = SharedStore::new();
    let nodes = [0, 1].map(|n| {
        let node = network.add_on(&format!("node-{n}"), Box::new(store.clone()), |c| {
            c.idle_timeout = Some(IDLE);
            c.durable_acknowledgement = true;
            configure(n, c);
        });
        network.node(node).set_policy(Policy {
            announce: Box::new(|_, _| false),
            access: Box::new(|_, _| tandem_core::Access::ReadWrite),
        });
        node
    });
    network.link_nodes(nodes[0], nodes[1]);
    let clients = [0, 1].map(|n| network.add(&format!("client-{n}"), |_| {}));
    let client_links = [0, 1].map(|n| network.link(nodes[n], clients[n]));
    network.run_until_quiescent();
    Cluster {
        network,
        nodes,
        clients,
        client_links,
    }
}

impl Cluster {
    /// Runs until nothing moves, firing the timers due now (saves made at once for durable
    /// acknowledgement), but no later one.
    fn settle(&mut self) {
        self.network.advance(Duration::ZERO);
    }

    /// Client `n` creates a document, holds it, and the network settles.
    fn create(&mut self, n: usize, key: &'static str, value: i64) -> DocumentId {
        let id = DocumentId::random();
        let client = self.clients[n];
        self.network
            .node(client)
            .create(id.clone(), doc_with(key, value));
        self.network.node(client).hold(&id, true);
        self.settle();
        id
    }

    /// Client `n` finds the document through its node, holds it, and the network settles.
    fn open(&mut self, n: usize, id: &DocumentId) {
        let client = self.clients[n];
        self.network.node(client).find(id);
        self.network.node(client).hold(id, true);
        self.settle();
    }

    fn change(&mut self, n: usize, id: &DocumentId, key: &'static str, value: i64) {
        let client = self.clients[n];
        assert!(self.network.node(client).change(id, doc_with(key, value)));
        self.settle();
    }

    fn loaded_on_node(&mut self, n: usize, id: &DocumentId) -> bool {
        let node = self.nodes[n];
        self.network.node(node).loaded().contains(id)
    }
}

/// A client on one node finds a document created through the other, and each sees the other's
/// changes from then on, through the two nodes.
#[test]
fn clients_on_different_nodes_edit_one_document_and_converge() {
    let mut c = cluster();
    let id = c.create(0, "a", 1);
    c.open(1, &id);
    let client_1 = c.clients[1];
    assert_eq!(value(&mut c.network, client_1, &id, "a"), Some(1));
    c.change(0, &id, "a", 2);
    assert_eq!(value(&mut c.network, client_1, &id, "a"), Some(2));
    c.change(1, &id, "b", 3);
    let client_0 = c.clients[0];
    assert_eq!(value(&mut c.network, client_0, &id, "b"), Some(3));
}

/// Documents only node 0's client uses are never loaded on node 1, though node 1 is told of
/// each one node 0 holds.
#[test]
fn a_node_does_not_hold_documents_only_the_other_nodes_clients_use() {
    let mut c = cluster();
    let ids: Vec<DocumentId> = (0..10).map(|n| c.create(0, "n", n)).collect();
    for id in &ids {
        c.change(0, id, "again", 1);
        assert!(c.loaded_on_node(0, id));
        assert!(
            !c.loaded_on_node(1, id),
            "node 1 holds a document nobody there uses"
        );
    }
}

/// A node that unloads a document for being idle stops receiving its changes; one whose client
/// still follows the document loads it again for that client, which gets the change.
#[test]
fn idle_unloading_on_one_node_keeps_its_followers_in_sync_and_the_rest_out() {
    let mut c = cluster();
    let followed = c.create(0, "v", 1);
    let dropped = c.create(0, "v", 1);
    c.open(1, &followed);
    c.open(1, &dropped);
    // Client 1 closes one document and reconnects (its node forgets what the client touched
    // with the connection).
    let client_1 = c.clients[1];
    c.network.node(client_1).hold(&dropped, false);
    assert!(c.network.node(client_1).evict(&dropped));
    c.network.run_until_quiescent();
    c.network.cut(c.client_links[1]);
    let link = c.network.link(c.nodes[1], client_1);
    c.client_links[1] = link;
    c.open(1, &followed);
    c.network.advance(IDLE + Duration::from_secs(1));
    assert!(!c.loaded_on_node(1, &followed) && !c.loaded_on_node(1, &dropped));

    c.change(0, &followed, "v", 2);
    c.change(0, &dropped, "v", 2);
    assert_eq!(value(&mut c.network, client_1, &followed, "v"), Some(2));
    assert!(c.loaded_on_node(1, &followed));
    assert!(!c.loaded_on_node(1, &dropped), "reloaded for nobody");
    // Node 0 went on with its client's changes (it was active) and saved them for everyone.
    assert!(c.loaded_on_node(0, &dropped));
}

/// A document created through node 0 and not yet saved is found through node 1: node 1 asks
/// node 0, which holds it.
#[test]
fn a_document_not_yet_in_storage_is_found_through_the_node_that_holds_it() {
    let mut c = cluster();
    let node_0 = c.nodes[0];
    c.network
        .set_saves(node_0, tandem_core::testing::Saves::Hold);
    let id = c.create(0, "v", 7);
    c.open(1, &id);
    let client_1 = c.clients[1];
    assert_eq!(value(&mut c.network, client_1, &id, "v"), Some(7));
}

/// Node 1's client closes a document that node 0's client keeps changing: node 1 unloads it
/// after its idle time, however often node 0 sends changes.
#[test]
fn another_nodes_changes_alone_do_not_keep_a_document_in_memory() {
    let mut c = cluster();
    let id = c.create(0, "v", 0);
    c.open(1, &id);
    let client_1 = c.clients[1];
    c.network.node(client_1).hold(&id, false);
    assert!(c.network.node(client_1).evict(&id));
    c.network.run_until_quiescent();
    c.network.cut(c.client_links[1]);
    let node_1 = c.nodes[1];
    c.network.link(node_1, client_1);
    c.network.run_until_quiescent();
    for n in 1..=6 {
        c.network.advance(IDLE / 3);
        c.change(0, &id, "v", n);
    }
    assert!(!c.loaded_on_node(1, &id));
    assert!(c.loaded_on_node(0, &id));
}

/// Node 1's client only watches; node 0's client stays busy with the document without changing
/// it (presence), which keeps it in node 0's memory but not in node 1's (another node's
/// traffic does not count). Node 1 unloads it, yet its client gets the presence and the next
/// change: node 1 does not tell node 0 to stop while a client of its own follows the document,
/// and what node 0 sends brings the document back for that client.
#[test]
fn a_watcher_on_one_node_gets_changes_after_its_node_unloaded_the_document() {
    let mut c = cluster();
    let id = c.create(0, "v", 0);
    c.open(1, &id);
    let (client_0, client_1) = (c.clients[0], c.clients[1]);
    for _ in 0..6 {
        c.network.advance(IDLE / 3);
        let presence = tandem_core::MessageData::new(vec![0xa0]).expect("not empty");
        c.network.node(client_0).broadcast(&id, presence);
        c.network.run_until_quiescent();
    }
    c.change(0, &id, "v", 1);
    assert_eq!(value(&mut c.network, client_1, &id, "v"), Some(1));
}

/// A change node 0 took from its client is taken by node 1 from node 0 even where node 1's own
/// limit would refuse it from a client (each node counts a document's growth from its own
/// load): the origin checked it.
#[test]
fn a_node_takes_what_another_node_relays_whatever_its_own_quota() {
    let mut c = cluster_with(|n, config| {
        if n == 1 {
            config.quota.max_change_bytes = Some(1_000);
        }
    });
    let id = c.create(0, "v", 0);
    c.open(1, &id);
    let client_0 = c.clients[0];
    let big: String = (0..4_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    assert!(c.network.node(client_0).change(&id, move |doc| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "big", big.as_str())?;
            tx.put(ROOT, "v", 1)?;
            Ok(())
        })
        .expect("a put");
    }));
    c.network.run_until_quiescent();
    let client_1 = c.clients[1];
    assert_eq!(value(&mut c.network, client_1, &id, "v"), Some(1));
}

/// Node 0's saves hang (its database connection is stuck). What node 0 sends node 1 does not
/// wait for them: node 1's changes reached node 0 through a node that saved them, so node 0
/// has nothing of node 1's to acknowledge, and its own client's change reaches node 1 at once.
#[test]
fn a_node_whose_saves_hang_still_relays_to_the_other_node() {
    let mut c = cluster();
    let id = c.create(0, "a", 0);
    c.open(1, &id);
    let node_0 = c.nodes[0];
    c.network
        .set_saves(node_0, tandem_core::testing::Saves::Hold);
    c.change(1, &id, "b", 1);
    c.change(0, &id, "a", 2);
    let client_1 = c.clients[1];
    assert_eq!(value(&mut c.network, client_1, &id, "a"), Some(2));
}
