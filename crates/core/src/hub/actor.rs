//! The hub actor: connections, which document hears of which peer, and routing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use tracing::{debug, info, warn};

use super::introductions::Introductions;
use super::rate::{EphemeralAllowance, EphemeralRate, Verdict};
use super::{
    ConnectionId, DocumentActorId, DocumentEvent, FindMode, HubEffect, HubInput, HubQuestionId,
};
use crate::document::{CommandId, Counter, PeerInfo, Start};
use crate::sync::EphemeralDedup;
use crate::{Access, DocUnavailableMessage, DocumentId, Grant, Message, PeerId, PeerMetadata};

/// Most introductions a connection keeps for documents out of memory: past them, a document
/// that unloads forgets that connection, which then misses its changes until it touches the
/// document again (a JS client does on reconnecting). 100,000 introductions cost the hub
/// about 10 MB.
pub const KEPT_INTRODUCTIONS: usize = 100_000;

/// A connection as the hub keeps it.
#[derive(Debug)]
struct Connection {
    peer: PeerId,
    metadata: PeerMetadata,
    /// What its credentials allow.
    grant: Grant,
    /// Documents whose changes from this connection were refused (over the quota): it only
    /// reads them from then on.
    writes_refused: Vec<DocumentId>,
    /// How many ephemeral messages it may still send.
    ephemeral: EphemeralAllowance,
    /// `announce(peer, None)`: whether the policy offers the peer anything. `None` until the
    /// policy answers; until then the peer is treated as offered nothing (it is introduced to
    /// what it touches, and told everywhere once the answer says so).
    announce_any: Option<bool>,
}

impl Connection {
    fn offered_everything(&self) -> bool {
        self.announce_any == Some(true)
    }

    /// What the connection may do with `document_id`.
    fn access_to(&self, document_id: &DocumentId) -> Access {
        let granted = self.grant.access_to(document_id);
        if self.writes_refused.contains(document_id) {
            granted.narrowed_by(Access::ReadOnly)
        } else {
            granted
        }
    }
}

/// What a policy question was asked for.
#[derive(Debug)]
enum Asked {
    /// A new connection.
    Connected(ConnectionId),
    /// A share-policy change: this connection's part of `command`.
    PolicyChanged {
        command: CommandId,
        connection: ConnectionId,
    },
}

/// A share-policy change waiting for the policy's answers.
#[derive(Debug)]
struct PolicyChange {
    waiting: usize,
    answers: Vec<(ConnectionId, bool)>,
}

/// How many reports of the live nodes a dropped node's links are refused for, unless one lists
/// it again: longer than a dialling node takes to give up on a link that keeps being refused.
pub(crate) const REFUSED_FOR_REPORTS: u8 = 10;

/// The repo's routing decisions: which connections are up and who is behind them, which
/// document actor is in memory for which document, which documents each peer has been introduced
/// to, which ephemeral messages were seen, what a message from a peer is allowed to claim.
///
/// Sans-IO: the driver feeds [`HubInput`]s and performs the [`HubEffect`]s that come back, in
/// order. The hub never waits for a document: it tells document actors (by
/// [`DocumentActorId`]) what concerns them and goes on; its work per event is proportional to
/// what the event touches (a message touches one document; a departure, the documents its peer
/// was introduced to), except where the event concerns every document (a peer offered
/// everything, a policy change, a shutdown).
///
/// ```
/// use std::time::Instant;
/// use tandem_core::document::CommandId;
/// use tandem_core::hub::{HubActor, HubEffect, HubInput};
/// use tandem_core::{DocumentId, Grant, PeerId, PeerMetadata};
///
/// let mut hub = HubActor::new(PeerId::from("server"), Default::default());
/// let effects = hub.handle(Instant::now(), HubInput::Connect {
///     command: CommandId(1),
///     peer: PeerId::from("alice"),
///     metadata: PeerMetadata::default(),
///     grant: Grant::default(),
/// });
/// // Accepted, then a question for the share policy: does it offer alice anything?
/// assert!(matches!(effects[0], HubEffect::Accepted { .. }));
/// assert!(matches!(effects[1], HubEffect::Ask { .. }));
/// ```
#[derive(Debug)]
pub struct HubActor {
    local_peer: PeerId,
    denylist: HashSet<DocumentId>,
    /// Each connection's allowance of ephemeral messages.
    ephemeral_rate: EphemeralRate,
    connections: BTreeMap<ConnectionId, Connection>,
    /// The connections that are other nodes of the cluster (a handful), so that an unload
    /// tells them without looking at every client.
    nodes: BTreeSet<ConnectionId>,
    /// The last connection made before the last [`HubInput::LiveNodes`] (connection ids only
    /// grow): the next report spares node links made after it, since their node may have
    /// registered after the registry it reports was read.
    last_reported_connection: ConnectionId,
    /// Nodes whose links were closed because the registry stopped listing them, with how many
    /// more reports may pass before they are forgotten: their links are refused meanwhile (or
    /// until the registry lists them again), so that a node cut off from the database does not
    /// link again and again only to be dropped. Forgotten in the end, as a node that died
    /// never comes back under its id.
    refused_nodes: BTreeMap<PeerId, u8>,
    /// The connections the policy offers everything (nodes too): a document coming into
    /// memory is told of them, and of the peers introduced to it, without looking at every
    /// other connection.
    offered: BTreeSet<ConnectionId>,
    by_peer: HashMap<PeerId, ConnectionId>,
    documents: BTreeMap<DocumentId, DocumentActorId>,
    actors: HashMap<DocumentActorId, DocumentId>,
    /// Actors of evicted documents still saving; a new actor for the document waits for them.
    unloading: HashMap<DocumentId, DocumentActorId>,
    /// Documents found through this repo's API (not only for a peer): any peer may be asked for
    /// them, whatever the policy offers it.
    wanted: BTreeSet<DocumentId>,
    /// Which documents' actors know which peers (those not offered everything).
    introductions: Introductions,
    /// Transports that connect out are making their first attempt ([`HubInput::NetworksSettling`]).
    networks_settling: bool,
    /// Actors of documents looked for while they were: told once they have.
    awaiting_networks: BTreeSet<DocumentActorId>,
    /// Connections accepted while they were: the documents waiting are released only once the
    /// policy has answered for these peers (one may be the peer that has them).
    joined_while_settling: BTreeSet<ConnectionId>,
    dedup: EphemeralDedup,
    asked: HashMap<HubQuestionId, Asked>,
    policy_changes: HashMap<CommandId, PolicyChange>,
    connection_ids: Counter,
    actor_ids: Counter,
    question_ids: Counter,
    effects: Vec<HubEffect>,
    /// The time of the input being handled.
    now: Option<Instant>,
}

impl HubActor {
    /// A hub for the repo `local_peer`, refusing the documents of `denylist`.
    pub fn new(local_peer: PeerId, denylist: HashSet<DocumentId>) -> Self {
        HubActor {
            local_peer,
            denylist,
            ephemeral_rate: EphemeralRate::default(),
            connections: BTreeMap::new(),
            nodes: BTreeSet::new(),
            last_reported_connection: ConnectionId(0),
            refused_nodes: BTreeMap::new(),
            offered: BTreeSet::new(),
            by_peer: HashMap::new(),
            documents: BTreeMap::new(),
            actors: HashMap::new(),
            unloading: HashMap::new(),
            wanted: BTreeSet::new(),
            introductions: Introductions::default(),
            networks_settling: false,
            awaiting_networks: BTreeSet::new(),
            joined_while_settling: BTreeSet::new(),
            dedup: EphemeralDedup::default(),
            asked: HashMap::new(),
            policy_changes: HashMap::new(),
            connection_ids: Counter::default(),
            actor_ids: Counter::default(),
            question_ids: Counter::default(),
            effects: Vec::new(),
            now: None,
        }
    }

    /// Each connection may send ephemeral messages at `rate` ([`EphemeralRate::default`]
    /// unless set); beyond, they are dropped, and a connection that keeps flooding is closed.
    pub fn with_ephemeral_rate(mut self, rate: EphemeralRate) -> Self {
        self.ephemeral_rate = rate;
        self
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: HubInput) -> Vec<HubEffect> {
        self.now = Some(now);
        match input {
            HubInput::Connect {
                command,
                peer,
                metadata,
                grant,
            } => self.connect(command, peer, metadata, grant),
            HubInput::Incoming {
                connection,
                message,
            } => self.incoming(connection, message),
            HubInput::Disconnected(connection) => self.disconnected(connection),
            HubInput::Answered { question, allowed } => self.answered(question, allowed),
            HubInput::Create {
                command,
                document_id,
            } => {
                let actor = self.spawn(document_id, Start::Created);
                self.effects.push(HubEffect::Found { command, actor });
            }
            HubInput::Find {
                command,
                document_id,
                mode,
            } => match mode {
                FindMode::Wanted { again } => self.find(command, document_id, again),
                FindMode::Stored => {
                    let actor = match self.documents.get(&document_id) {
                        Some(&actor) => actor,
                        None => self.spawn_loader(document_id),
                    };
                    self.effects.push(HubEffect::Found { command, actor });
                }
            },
            HubInput::Delete {
                command,
                document_id,
            } => self.delete(command, document_id),
            HubInput::Flush { command, documents } => {
                let actors: Vec<DocumentActorId> = match documents {
                    Some(ids) => ids
                        .iter()
                        .filter_map(|id| self.documents.get(id).copied())
                        .collect(),
                    None => self.documents.values().copied().collect(),
                };
                for actor in actors {
                    self.tell(actor, DocumentEvent::Flush(command));
                }
                self.effects.push(HubEffect::Completed(command));
            }
            HubInput::SharePolicyChanged { command } => self.share_policy_changed(command),
            HubInput::LiveNodes { nodes, command } => {
                self.close_nodes_not_alive(&nodes);
                self.effects.push(HubEffect::Completed(command));
            }
            HubInput::NetworksSettling(settling) => {
                self.networks_settling = settling;
                self.release_awaiting();
            }
            HubInput::Shutdown { command } => {
                let actors: Vec<DocumentActorId> =
                    std::mem::take(&mut self.documents).into_values().collect();
                for actor in actors {
                    self.tell(actor, DocumentEvent::Stop(Some(command)));
                }
                self.effects.push(HubEffect::Completed(command));
            }
            HubInput::DocumentIdle { actor, available } => self.idle(actor, available),
            HubInput::Evict(document_id) => {
                if let Some(actor) = self.documents.get(&document_id).copied() {
                    self.idle(actor, true);
                }
            }
            HubInput::DocumentStopped(actor) => self.stopped(actor),
            HubInput::WritesRefused { peer, document_id } => {
                let entry = self
                    .by_peer
                    .get(&peer)
                    .and_then(|connection| self.connections.get_mut(connection));
                if let Some(entry) = entry {
                    if !entry.writes_refused.contains(&document_id) {
                        entry.writes_refused.push(document_id);
                    }
                }
            }
            HubInput::DocumentFailed(actor) => {
                self.awaiting_networks.remove(&actor);
                if let Some(document_id) = self.actors.remove(&actor) {
                    if self.documents.get(&document_id) == Some(&actor) {
                        self.documents.remove(&document_id);
                        self.introductions.document_gone(&document_id);
                    }
                }
            }
        }
        std::mem::take(&mut self.effects)
    }

    /// The documents in memory.
    pub fn documents(&self) -> impl Iterator<Item = (&DocumentId, &DocumentActorId)> {
        self.documents.iter()
    }

    /// The actor in memory for `document_id`, if any.
    pub fn actor_of(&self, document_id: &DocumentId) -> Option<DocumentActorId> {
        self.documents.get(document_id).copied()
    }

    /// How many (peer, document) introductions the hub keeps. A connection keeps those of
    /// documents that unloaded (to sync them again when they come back), up to
    /// [`KEPT_INTRODUCTIONS`] each; a document that does not exist keeps none.
    pub fn introductions(&self) -> usize {
        self.introductions.len()
    }

    fn tell(&mut self, actor: DocumentActorId, event: DocumentEvent) {
        self.effects.push(HubEffect::Tell { actor, event });
    }

    /// The peer of `connection` as the actor of `document_id` sees it.
    fn info(connection: &Connection, document_id: &DocumentId) -> PeerInfo {
        PeerInfo {
            peer: connection.peer.clone(),
            metadata: connection.metadata.clone(),
            announce_any: connection.offered_everything(),
            granted: connection.access_to(document_id),
            synced_before: false,
            cluster_node: connection.grant.cluster_node,
        }
    }

    fn ask(&mut self, peer: PeerId, asked: Asked) {
        let question = HubQuestionId(self.question_ids.next());
        self.asked.insert(question, asked);
        self.effects.push(HubEffect::Ask { question, peer });
    }

    // ---- connections ----

    fn connect(
        &mut self,
        command: CommandId,
        peer: PeerId,
        mut metadata: PeerMetadata,
        grant: Grant,
    ) {
        if peer == self.local_peer {
            warn!(%peer, "a peer claims our own id; refusing it");
            self.effects.push(HubEffect::Refused(command));
            return;
        }
        if grant.cluster_node && self.refused_nodes.contains_key(&peer) {
            info!(%peer, "refusing a link from a node the registry does not list as alive");
            self.effects.push(HubEffect::Refused(command));
            return;
        }
        // A client may not take over a node's link by claiming the node's peer id.
        let node_taken_over = self
            .by_peer
            .get(&peer)
            .and_then(|old| self.connections.get(old))
            .is_some_and(|old| old.grant.cluster_node && !grant.cluster_node);
        if node_taken_over {
            warn!(%peer, "a connection claims the id of a cluster node; refusing it");
            self.effects.push(HubEffect::Refused(command));
            return;
        }
        // A second connection from one peer id takes over, as on a JS server.
        if let Some(old) = self.by_peer.remove(&peer) {
            info!(%peer, "peer reconnected; closing its previous connection");
            self.nodes.remove(&old);
            self.offered.remove(&old);
            if let Some(entry) = self.connections.remove(&old) {
                self.effects.push(HubEffect::Close(old));
                self.effects.push(HubEffect::PeerLeft(peer.clone()));
                self.tell_departure(&entry);
            }
        }
        if grant.cluster_node {
            // Another node keeps its documents in our storage, under our storage id: its sync
            // states must not be stored under that id, nor its heads taken for a store's.
            metadata.storage_id = None;
            metadata.is_ephemeral = true;
        }
        let cluster_node = grant.cluster_node;
        let connection = ConnectionId(self.connection_ids.next());
        self.connections.insert(
            connection,
            Connection {
                peer: peer.clone(),
                metadata,
                grant,
                writes_refused: Vec::new(),
                ephemeral: EphemeralAllowance::new(self.ephemeral_rate),
                announce_any: None,
            },
        );
        self.by_peer.insert(peer.clone(), connection);
        if cluster_node {
            self.nodes.insert(connection);
        }
        if self.networks_settling {
            self.joined_while_settling.insert(connection);
        }
        self.effects.push(HubEffect::Accepted {
            command,
            connection,
        });
        if cluster_node {
            // Told of every document in memory, whatever the policy says: each may be open on
            // both nodes.
            self.announce_known(connection, true);
        } else {
            self.ask(peer, Asked::Connected(connection));
        }
    }

    fn answered(&mut self, question: HubQuestionId, allowed: bool) {
        match self.asked.remove(&question) {
            Some(Asked::Connected(connection)) => {
                self.announce_known(connection, allowed);
                self.release_awaiting();
            }
            Some(Asked::PolicyChanged {
                command,
                connection,
            }) => {
                if let Some(change) = self.policy_changes.get_mut(&command) {
                    change.waiting -= 1;
                    change.answers.push((connection, allowed));
                    if change.waiting == 0 {
                        self.policy_change_answered(command);
                    }
                }
            }
            None => debug!(?question, "an answer nobody waits for; ignored"),
        }
    }

    /// The policy said whether a new connection's peer is offered anything.
    fn announce_known(&mut self, connection: ConnectionId, announce_any: bool) {
        let Some(entry) = self.connections.get_mut(&connection) else {
            return; // gone meanwhile
        };
        entry.announce_any = Some(announce_any);
        let grant = entry.grant.clone();
        if announce_any {
            self.offered.insert(connection);
        }
        let info = PeerInfo {
            peer: entry.peer.clone(),
            metadata: entry.metadata.clone(),
            announce_any,
            granted: grant.access,
            synced_before: false,
            cluster_node: grant.cluster_node,
        };
        info!(peer = %info.peer, announce_any, "peer connected");
        self.effects.push(HubEffect::PeerJoined {
            connection,
            peer: info.clone(),
        });
        let targets: Vec<(DocumentId, DocumentActorId)> = if announce_any {
            self.documents
                .iter()
                .map(|(id, actor)| (id.clone(), *actor))
                .collect()
        } else {
            // Offered nothing, but it may have what we are looking for.
            self.wanted
                .iter()
                .filter_map(|id| self.documents.get(id).map(|actor| (id.clone(), *actor)))
                .collect()
        };
        for (document_id, actor) in targets {
            if !announce_any {
                self.introductions.introduce(&info.peer, &document_id);
            }
            let peer = PeerInfo {
                granted: grant.access_to(&document_id),
                ..info.clone()
            };
            self.tell(actor, DocumentEvent::PeerConnected { peer, connection });
        }
    }

    fn disconnected(&mut self, connection: ConnectionId) {
        self.nodes.remove(&connection);
        self.offered.remove(&connection);
        let Some(entry) = self.connections.remove(&connection) else {
            return; // an older connection of a peer that has since reconnected
        };
        self.by_peer.remove(&entry.peer);
        info!(peer = %entry.peer, "peer disconnected");
        self.effects.push(HubEffect::PeerLeft(entry.peer.clone()));
        self.effects.push(HubEffect::Close(connection));
        self.tell_departure(&entry);
    }

    /// Closes the links of nodes the registry no longer lists as alive, but for links made
    /// since the last report, and refuses theirs until it lists them again (or for
    /// [`REFUSED_FOR_REPORTS`]).
    fn close_nodes_not_alive(&mut self, live: &BTreeSet<PeerId>) {
        self.refused_nodes.retain(|peer, reports_left| {
            *reports_left = reports_left.saturating_sub(1);
            *reports_left > 0 && !live.contains(peer)
        });
        let reported_through = std::mem::replace(
            &mut self.last_reported_connection,
            ConnectionId(self.connection_ids.last()),
        );
        let gone: Vec<ConnectionId> = self
            .nodes
            .iter()
            .filter(|connection| **connection <= reported_through)
            .filter(|connection| {
                self.connections
                    .get(connection)
                    .is_some_and(|node| !live.contains(&node.peer))
            })
            .copied()
            .collect();
        for connection in gone {
            if let Some(node) = self.connections.get(&connection) {
                info!(peer = %node.peer, "closing the link of a node no longer alive");
                self.refused_nodes
                    .insert(node.peer.clone(), REFUSED_FOR_REPORTS);
            }
            self.disconnected(connection);
        }
    }

    /// Tells the documents that know the peer that it is gone: every document if the policy
    /// offered it everything, otherwise those it was introduced to.
    fn tell_departure(&mut self, entry: &Connection) {
        let introduced = self.introductions.peer_left(&entry.peer);
        let actors: Vec<DocumentActorId> = if entry.offered_everything() {
            self.documents.values().copied().collect()
        } else {
            introduced
                .iter()
                .filter_map(|id| self.documents.get(id).copied())
                .collect()
        };
        for actor in actors {
            self.tell(actor, DocumentEvent::PeerDisconnected(entry.peer.clone()));
        }
    }

    fn share_policy_changed(&mut self, command: CommandId) {
        // Other nodes are not the policy's to decide: they stay told of everything.
        let connections: Vec<(ConnectionId, PeerId)> = self
            .connections
            .iter()
            .filter(|(_, c)| !c.grant.cluster_node)
            .map(|(id, c)| (*id, c.peer.clone()))
            .collect();
        self.policy_changes.insert(
            command,
            PolicyChange {
                waiting: connections.len(),
                answers: Vec::new(),
            },
        );
        if connections.is_empty() {
            self.policy_change_answered(command);
            return;
        }
        for (connection, peer) in connections {
            self.ask(
                peer,
                Asked::PolicyChanged {
                    command,
                    connection,
                },
            );
        }
    }

    /// Every peer's `announce(peer, None)` is known again: every document decides again.
    fn policy_change_answered(&mut self, command: CommandId) {
        let Some(change) = self.policy_changes.remove(&command) else {
            return;
        };
        for (connection, announce_any) in change.answers {
            let Some(entry) = self.connections.get_mut(&connection) else {
                continue;
            };
            let withdrawn = entry.offered_everything() && !announce_any;
            entry.announce_any = Some(announce_any);
            if announce_any {
                self.offered.insert(connection);
            } else {
                self.offered.remove(&connection);
            }
            // A peer offered everything until now was told to every document, and no
            // introductions were kept for it. Its departure must still reach them all. (A peer
            // offered nothing before is synced only where it asked or is asked, which `incoming`
            // and `find` introduced.)
            if withdrawn {
                let peer = entry.peer.clone();
                for document_id in self.documents.keys() {
                    self.introductions.introduce(&peer, document_id);
                }
            }
        }
        let documents: Vec<(DocumentId, DocumentActorId)> = self
            .documents
            .iter()
            .map(|(id, actor)| (id.clone(), *actor))
            .collect();
        for (document_id, actor) in documents {
            let peers = self
                .connections
                .iter()
                .map(|(id, c)| (Self::info(c, &document_id), *id))
                .collect();
            self.tell(actor, DocumentEvent::SharePolicyChanged { peers, command });
        }
        self.effects.push(HubEffect::Completed(command));
    }

    // ---- messages ----

    fn incoming(&mut self, connection: ConnectionId, message: Message) {
        let Some(entry) = self.connections.get(&connection) else {
            return;
        };
        let peer = entry.peer.clone();
        // Only ephemeral messages are relayed with their original sender, and not on a
        // connection whose credentials bind it to its own id; anything else must come from the
        // peer itself.
        let own = entry.grant.sender_bound
            || matches!(
                message,
                Message::Sync(_)
                    | Message::Request(_)
                    | Message::DocUnavailable(_)
                    | Message::RemoteSubscriptionChange(_)
                    | Message::RemoteHeadsChanged(_)
            );
        if own && message.sender_id() != &peer {
            warn!(%peer, claimed = %message.sender_id(), "peer lies about its id; disconnecting it");
            self.effects.push(HubEffect::Close(connection));
            return;
        }
        if matches!(
            message,
            Message::RemoteSubscriptionChange(_) | Message::RemoteHeadsChanged(_)
        ) {
            self.effects.push(HubEffect::Gossip {
                connection,
                message,
            });
            return;
        }
        let Some(document_id) = message.document_id().cloned() else {
            debug!(%peer, kind = message.type_name(), "message ignored");
            return;
        };
        // A document the credentials do not grant is answered as one that does not exist.
        let granted = entry.access_to(&document_id);
        if self.denylist.contains(&document_id) || !granted.may_read() {
            return self.answer_unavailable(connection, peer, document_id, &message);
        }
        let cluster_node = entry.grant.cluster_node;
        if let Message::Ephemeral(m) = &message {
            let verdict = match (self.connections.get_mut(&connection), self.now) {
                // A node relays every client of its own: their messages were counted there.
                (Some(_), Some(_)) if cluster_node => Verdict::Pass,
                (Some(entry), Some(now)) => entry.ephemeral.spend(now),
                _ => return,
            };
            match verdict {
                Verdict::Pass => {}
                Verdict::Drop => {
                    debug!(%peer, "ephemeral messages over the rate; dropped");
                    self.effects
                        .push(HubEffect::EphemeralLimited { cut_off: false });
                    return;
                }
                Verdict::CutOff => {
                    warn!(%peer, "a flood of ephemeral messages; disconnecting the peer");
                    self.effects
                        .push(HubEffect::EphemeralLimited { cut_off: true });
                    self.effects.push(HubEffect::Close(connection));
                    return;
                }
            }
            if !self.dedup.accept(&m.sender_id, &m.session_id, m.count) {
                return;
            }
        }
        let actor = match self.documents.get(&document_id) {
            Some(actor) => *actor,
            // A doc-unavailable for a document we are not looking for answers nothing.
            None if matches!(message, Message::DocUnavailable(_)) => return,
            // Another node loads nothing here on its own: the document is in the storage we
            // share. Unless a client of ours follows the document, this node does not hold it,
            // and says so (the other node then stops sending it here).
            None if cluster_node && !self.introductions.anyone_knows(&document_id) => {
                return self.answer_unavailable(connection, peer, document_id, &message);
            }
            None => self.spawn_loader(document_id.clone()),
        };
        let Some(entry) = self.connections.get(&connection) else {
            return;
        };
        if !entry.offered_everything() {
            self.introductions.introduce(&peer, &document_id);
        }
        let metadata = entry.metadata.clone();
        self.tell(
            actor,
            DocumentEvent::Incoming {
                connection,
                from: peer,
                metadata,
                granted,
                message,
            },
        );
    }

    /// Tells every other node of the cluster that this one does not hold `document_id`.
    fn tell_nodes_unavailable(&mut self, document_id: &DocumentId) {
        for connection in &self.nodes {
            if let Some(node) = self.connections.get(connection) {
                let message = self.unavailable(node.peer.clone(), document_id.clone());
                self.effects.push(HubEffect::Send(*connection, message));
            }
        }
    }

    /// `doc-unavailable` for `document_id`, to `peer`.
    fn unavailable(&self, peer: PeerId, document_id: DocumentId) -> Message {
        Message::DocUnavailable(DocUnavailableMessage {
            sender_id: self.local_peer.clone(),
            target_id: peer,
            document_id,
        })
    }

    /// Answers a peer's sync or request for a document it gets nothing of with
    /// `doc-unavailable`, as for one that does not exist.
    fn answer_unavailable(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        document_id: DocumentId,
        message: &Message,
    ) {
        if matches!(message, Message::Sync(_) | Message::Request(_)) {
            let message = self.unavailable(peer, document_id);
            self.effects.push(HubEffect::Send(connection, message));
        }
    }

    // ---- documents ----

    fn find(&mut self, command: CommandId, document_id: DocumentId, again: bool) {
        let newly_wanted = self.wanted.insert(document_id.clone());
        let actor = match self.documents.get(&document_id) {
            Some(&actor) => {
                if self.networks_settling && self.awaiting_networks.insert(actor) {
                    // First, so that the request below waits for the transports too.
                    self.tell(actor, DocumentEvent::AwaitNetworks);
                }
                if newly_wanted {
                    // Found here before only for a peer: now every peer may be asked.
                    self.tell(actor, DocumentEvent::WantedLocally);
                    let peers: Vec<(PeerInfo, ConnectionId)> = self
                        .connections
                        .iter()
                        .map(|(id, c)| (Self::info(c, &document_id), *id))
                        .collect();
                    for (peer, connection) in peers {
                        if !peer.announce_any {
                            self.introductions.introduce(&peer.peer, &document_id);
                        }
                        self.tell(actor, DocumentEvent::PeerConnected { peer, connection });
                    }
                }
                if again {
                    self.tell(actor, DocumentEvent::RequestAgain(command));
                }
                actor
            }
            None => self.spawn_loader(document_id),
        };
        self.effects.push(HubEffect::Found { command, actor });
    }

    fn delete(&mut self, command: CommandId, document_id: DocumentId) {
        self.forget(&document_id);
        let actor = match self.documents.remove(&document_id) {
            Some(actor) => actor,
            // Not in memory: a short-lived actor (never listed) removes it from storage.
            None => {
                let actor = self.spawn_loader(document_id.clone());
                self.documents.remove(&document_id);
                actor
            }
        };
        // Until the removal ends, a new actor for the document waits for it before reading
        // storage: it must not read chunks being removed, nor miss the tombstone.
        self.unloading.insert(document_id, actor);
        self.tell(actor, DocumentEvent::Delete(command));
    }

    /// A document's peers and interest go: it was deleted, or failed.
    fn forget(&mut self, document_id: &DocumentId) {
        self.introductions.document_gone(document_id);
        self.unloaded(document_id);
    }

    /// A document left memory. The peers it was introduced to stay introduced (until they
    /// leave): they are synced again when it is next loaded, or a client that only watches
    /// the document would never hear of the next change made elsewhere.
    fn unloaded(&mut self, document_id: &DocumentId) {
        self.wanted.remove(document_id);
        self.effects.push(HubEffect::Forgotten(document_id.clone()));
    }

    /// Once transports have made their first attempts, and every peer that joined meanwhile
    /// has been introduced to the documents (the policy answered for it: it may be the one
    /// that has them), the documents looked for meanwhile stop waiting for peers.
    fn release_awaiting(&mut self) {
        if self.networks_settling {
            return;
        }
        if self.awaiting_networks.is_empty() {
            // Nothing waits: no scan of the questions pending (a server answers one for every
            // client that joins).
            self.joined_while_settling.clear();
            return;
        }
        let joined = &self.joined_while_settling;
        let introducing = !joined.is_empty()
            && self
                .asked
                .values()
                .any(|a| matches!(a, Asked::Connected(c) if joined.contains(c)));
        if introducing {
            return;
        }
        self.joined_while_settling.clear();
        for actor in std::mem::take(&mut self.awaiting_networks) {
            if self.actors.contains_key(&actor) {
                self.tell(actor, DocumentEvent::NetworksSettled);
            }
        }
    }

    fn spawn_loader(&mut self, document_id: DocumentId) -> DocumentActorId {
        let wanted_locally = self.wanted.contains(&document_id);
        let networks_settling = wanted_locally && self.networks_settling;
        let actor = self.spawn(
            document_id,
            Start::Load {
                wanted_locally,
                networks_settling,
            },
        );
        if networks_settling {
            self.awaiting_networks.insert(actor);
        }
        actor
    }

    fn spawn(&mut self, document_id: DocumentId, start: Start) -> DocumentActorId {
        let actor = DocumentActorId(self.actor_ids.next());
        let after = self.unloading.remove(&document_id);
        // A document we look for may be asked of any peer; otherwise only peers offered
        // documents are candidates.
        let any_peer = matches!(
            start,
            Start::Load {
                wanted_locally: true,
                ..
            }
        );
        let candidates: BTreeSet<ConnectionId> = if any_peer {
            self.connections.keys().copied().collect()
        } else {
            let introduced = self
                .introductions
                .peers_of(&document_id)
                .filter_map(|peer| self.by_peer.get(peer).copied());
            self.offered.iter().copied().chain(introduced).collect()
        };
        let mut peers = Vec::new();
        for id in &candidates {
            let Some(connection) = self.connections.get(id) else {
                continue;
            };
            let mut info = Self::info(connection, &document_id);
            if info.announce_any {
                peers.push((info, *id));
            } else if self.introductions.knows(&info.peer, &document_id) {
                info.synced_before = true;
                peers.push((info, *id));
            } else if any_peer {
                self.introductions.introduce(&info.peer, &document_id);
                peers.push((info, *id));
            }
        }
        self.documents.insert(document_id.clone(), actor);
        self.actors.insert(actor, document_id.clone());
        self.effects.push(HubEffect::Spawn {
            actor,
            document_id,
            start,
            peers,
            after,
        });
        actor
    }

    fn idle(&mut self, actor: DocumentActorId, available: bool) {
        let Some(document_id) = self.actors.get(&actor).cloned() else {
            return;
        };
        // Only if it is still this actor's document (a newer one may have replaced it).
        if self.documents.get(&document_id) != Some(&actor) {
            return;
        }
        self.documents.remove(&document_id);
        if available {
            // A connection that touched very many documents keeps only so many of those out
            // of memory.
            self.introductions
                .unloaded(&document_id, KEPT_INTRODUCTIONS);
        } else {
            // Nobody has it: a peer asking for made-up ids leaves nothing behind.
            self.introductions.document_gone(&document_id);
        }
        if !self.introductions.anyone_knows(&document_id) {
            // No client here follows it: other nodes stop sending it here (should it come
            // back, both sides start afresh). One that a client follows stays synced, so that
            // the next change from another node brings it back for that client.
            self.tell_nodes_unavailable(&document_id);
        }
        // Until it ends, a new actor for the document waits for it before reading storage.
        debug!(%document_id, "unloading idle document");
        self.unloading.insert(document_id, actor);
        self.tell(actor, DocumentEvent::Stop(None));
    }

    fn stopped(&mut self, actor: DocumentActorId) {
        self.awaiting_networks.remove(&actor);
        let Some(document_id) = self.actors.remove(&actor) else {
            return;
        };
        // Only this actor's own entry goes: a newer actor of the document may be stopping too,
        // and one started next must wait for that one.
        if self.unloading.get(&document_id) == Some(&actor) {
            self.unloading.remove(&document_id);
        }
        if self.documents.get(&document_id) == Some(&actor) {
            self.documents.remove(&document_id);
        }
        if !self.documents.contains_key(&document_id) {
            self.unloaded(&document_id);
        }
    }
}
