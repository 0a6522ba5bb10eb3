//! [`Network`]: several [`Node`]s linked in memory, on one virtual clock.

use std::time::{Duration, Instant};

use super::{MemoryStore, Node, NodeStore};
use crate::document::DocumentConfig;
use crate::hub::ConnectionId;
use crate::{Grant, Message, PeerId, SessionId, StorageId};

/// Rounds of delivery after which a network still talking is taken to talk forever.
const MAX_ROUNDS: usize = 100_000;

/// What a node's storage does with the saves it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saves {
    /// Each save lands as soon as the network runs.
    Land,
    /// Saves stay in flight (a hung disk) until this changes.
    Hold,
    /// Each save fails.
    Fail,
}

/// A link between two nodes, by node index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkId(usize);

#[derive(Debug)]
struct Link {
    ends: [(usize, ConnectionId); 2],
    up: bool,
    /// Messages on their way, from end 0 to end 1 and from end 1 to end 0, in order.
    in_flight: [Vec<Vec<u8>>; 2],
}

/// Nodes on one virtual clock, linked in memory, each with a [`MemoryStore`].
///
/// [`run_until_quiescent`](Self::run_until_quiescent) delivers every message (through the wire
/// codec) and lands or fails saves as each node's [`Saves`] says, until nothing moves;
/// [`advance`](Self::advance) moves the clock, firing every timer due on the way. Nothing waits
/// on wall-clock time: a test that something does *not* happen runs the network until it is
/// quiet and looks.
///
/// ```
/// use tandem_core::testing::Network;
/// use tandem_core::DocumentId;
/// use automerge::{transaction::Transactable, Automerge, ROOT};
///
/// let mut network = Network::new();
/// let alice = network.add("alice", |_| {});
/// let bob = network.add("bob", |_| {});
/// network.link(alice, bob);
/// let id = DocumentId::random();
/// network.node(alice).create(id.clone(), |doc: &mut Automerge| {
///     doc.transact(|tx| tx.put(ROOT, "hello", "world")).unwrap();
/// });
/// network.run_until_quiescent();
/// network.node(bob).find(&id);
/// network.run_until_quiescent();
/// assert_eq!(
///     network.node(bob).document(&id).map(|d| d.doc.get_heads()),
///     network.node(alice).document(&id).map(|d| d.doc.get_heads()),
/// );
/// ```
#[derive(Debug)]
pub struct Network {
    nodes: Vec<Node>,
    saves: Vec<Saves>,
    links: Vec<Link>,
    now: Instant,
}

impl Default for Network {
    fn default() -> Self {
        Network::new()
    }
}

impl Network {
    /// No nodes yet; the clock starts now.
    pub fn new() -> Self {
        Network {
            nodes: Vec::new(),
            saves: Vec::new(),
            links: Vec::new(),
            now: Instant::now(),
        }
    }

    /// Adds a node named `name` with storage, configured by `configure` (from the repo's
    /// defaults); its index.
    pub fn add(&mut self, name: &str, configure: impl FnOnce(&mut DocumentConfig)) -> usize {
        self.add_on(name, Box::new(MemoryStore::new()), configure)
    }

    /// [`add`](Self::add), over `store` (a [`SharedStore`](super::SharedStore) for the nodes
    /// of a cluster).
    pub fn add_on(
        &mut self,
        name: &str,
        store: Box<dyn NodeStore>,
        configure: impl FnOnce(&mut DocumentConfig),
    ) -> usize {
        let index = self.nodes.len();
        let mut config = DocumentConfig::new(
            PeerId::from(name.to_owned()),
            SessionId::from_random(index as u128 + 1),
        );
        config.storage = true;
        configure(&mut config);
        let seed = [index as u8 + 1; 16];
        self.nodes.push(Node::new(config, store, seed, self.now));
        self.saves.push(Saves::Land);
        index
    }

    /// Node `index`.
    pub fn node(&mut self, index: usize) -> &mut Node {
        &mut self.nodes[index]
    }

    /// What node `index`'s storage does with saves from now on.
    pub fn set_saves(&mut self, index: usize, saves: Saves) {
        self.saves[index] = saves;
    }

    /// The clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Connects two nodes (each tells the other who it is, with its storage id).
    pub fn link(&mut self, a: usize, b: usize) -> LinkId {
        self.link_granted(a, b, Grant::default())
    }

    /// [`link`](Self::link), with `a` holding `b` to what `grant` allows (as a server holds a
    /// client whose token it checked).
    pub fn link_granted(&mut self, a: usize, b: usize, grant: Grant) -> LinkId {
        self.link_both(a, b, grant, Grant::default())
    }

    /// Links two nodes of one cluster: each holds the other as a node
    /// ([`Grant::cluster_node`]).
    pub fn link_nodes(&mut self, a: usize, b: usize) -> LinkId {
        self.link_both(a, b, Grant::cluster_node(), Grant::cluster_node())
    }

    fn link_both(&mut self, a: usize, b: usize, grant_a: Grant, grant_b: Grant) -> LinkId {
        let id_a = self.nodes[a].peer_id().clone();
        let id_b = self.nodes[b].peer_id().clone();
        let meta_a = self.nodes[a].metadata(Some(StorageId::from(format!("store-{a}"))));
        let meta_b = self.nodes[b].metadata(Some(StorageId::from(format!("store-{b}"))));
        let end_a = self.nodes[a].connect(id_b, meta_b, grant_a);
        let end_b = self.nodes[b].connect(id_a, meta_a, grant_b);
        let (Some(end_a), Some(end_b)) = (end_a, end_b) else {
            panic!("a node refused a link between {a} and {b}");
        };
        self.links.push(Link {
            ends: [(a, end_a), (b, end_b)],
            up: true,
            in_flight: [Vec::new(), Vec::new()],
        });
        LinkId(self.links.len() - 1)
    }

    /// Cuts a link: both ends see their connection end; what was in flight is lost.
    pub fn cut(&mut self, link: LinkId) {
        let Some(l) = self.links.get_mut(link.0) else {
            return;
        };
        if !l.up {
            return;
        }
        l.up = false;
        l.in_flight = [Vec::new(), Vec::new()];
        let ends = l.ends;
        for (node, connection) in ends {
            self.nodes[node].disconnect(connection);
        }
    }

    /// Whether a link is up (a node may have closed it).
    pub fn is_up(&self, link: LinkId) -> bool {
        self.links.get(link.0).is_some_and(|l| l.up)
    }

    /// Delivers messages and lands (or fails) saves until nothing moves.
    ///
    /// # Panics
    ///
    /// If the nodes never fall quiet (two peers talking forever is a bug worth failing on).
    pub fn run_until_quiescent(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut moved = self.collect();
            for index in 0..self.nodes.len() {
                let saves = match self.saves[index] {
                    Saves::Land => true,
                    Saves::Fail => false,
                    Saves::Hold => continue,
                };
                for actor in self.nodes[index].saves_in_flight() {
                    self.nodes[index].land_save(actor, saves);
                    moved = true;
                }
            }
            for l in 0..self.links.len() {
                for direction in 0..2 {
                    let messages = std::mem::take(&mut self.links[l].in_flight[direction]);
                    let (node, connection) = self.links[l].ends[1 - direction];
                    for bytes in messages {
                        if !self.links[l].up {
                            break;
                        }
                        moved = true;
                        match Message::decode(&bytes) {
                            Ok(message) => self.nodes[node].receive(connection, message),
                            Err(error) => panic!("a frame a node wrote does not decode: {error}"),
                        }
                    }
                }
            }
            if !moved && !self.collect() {
                return;
            }
        }
        panic!("the network did not fall quiet within {MAX_ROUNDS} rounds");
    }

    /// Moves the clock on by `by`, stopping at every timer due on the way (and running the
    /// network until quiet after each).
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        loop {
            self.run_until_quiescent();
            let next = self
                .nodes
                .iter()
                .filter_map(Node::next_timeout)
                .min()
                .filter(|at| *at <= target);
            let at = next.unwrap_or(target).max(self.now);
            self.now = at;
            for node in &mut self.nodes {
                node.tick(at);
            }
            if next.is_none() {
                self.run_until_quiescent();
                return;
            }
        }
    }

    /// Takes what the nodes sent and closed; whether anything was.
    fn collect(&mut self) -> bool {
        let mut moved = false;
        for index in 0..self.nodes.len() {
            for connection in self.nodes[index].take_closing() {
                if let Some(l) = self.link_of(index, connection) {
                    moved = true;
                    self.cut(LinkId(l));
                }
            }
            for (connection, message) in self.nodes[index].take_outgoing() {
                let Some(l) = self.link_of(index, connection) else {
                    continue;
                };
                let link = &mut self.links[l];
                if !link.up {
                    continue;
                }
                let direction = if link.ends[0] == (index, connection) {
                    0
                } else {
                    1
                };
                link.in_flight[direction].push(message.encode());
                moved = true;
            }
        }
        moved
    }

    fn link_of(&self, node: usize, connection: ConnectionId) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.up && l.ends.contains(&(node, connection)))
    }
}
