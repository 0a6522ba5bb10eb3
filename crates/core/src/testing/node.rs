//! [`Node`]: one repo's actors driven in one thread, with no IO and no clock of its own.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use automerge::{ActorId, Automerge, ChangeHash};

use super::NodeStore;
use crate::document::{
    CommandId, DocumentActor, DocumentConfig, DocumentEffect, DocumentInput, PeerInfo, SaveId,
    SaveJob, SaveOutcome, ShareAnswer, ShareQuestion,
};
use crate::hub::{
    ConnectionId, DocumentActorId, DocumentEvent, FindMode, HubActor, HubEffect, HubInput,
};
use crate::persistence::{load_document, take_in_stored, Loaded};
use crate::sync::HandleState;
use crate::{
    Access, ChunkKey, ChunkKind, DocumentId, Grant, Message, MessageData, PeerId, PeerMetadata,
    SessionId, StorageError, StorageKey,
};

/// `announce(peer, document)`: offer the document (`None`: anything) to the peer unprompted.
pub type AnnounceFn = Box<dyn Fn(&PeerId, Option<&DocumentId>) -> bool>;
/// `access(peer, document)`: may the peer sync the document, and which way.
pub type AccessFn = Box<dyn Fn(&PeerId, &DocumentId) -> Access>;

/// A share policy as two plain functions (both always true by default: automerge-repo's).
pub struct Policy {
    /// Offer unprompted?
    pub announce: AnnounceFn,
    /// May sync?
    pub access: AccessFn,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            announce: Box::new(|_, _| true),
            access: Box::new(|_, _| Access::ReadWrite),
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").finish_non_exhaustive()
    }
}

/// A document in a node's memory.
#[derive(Debug)]
pub struct NodeDocument {
    /// Which document.
    pub document_id: DocumentId,
    /// Its content.
    pub doc: Automerge,
    /// Its actor.
    pub actor: DocumentActor,
    /// The save written and not yet landed, with the changes it holds.
    saving: Option<(SaveId, SaveJob, Vec<ChangeHash>)>,
}

/// Something a node's actors did that a test may want to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A document's handle state changed.
    State(DocumentId, HandleState),
    /// An ephemeral value reached the application.
    Ephemeral {
        /// The document.
        document_id: DocumentId,
        /// The original sender.
        sender: PeerId,
        /// The sender's session.
        session_id: SessionId,
        /// Its count in that session.
        count: u64,
        /// The value.
        data: Vec<u8>,
    },
    /// A document actor cut a peer off (it sent what automerge cannot take, or its answers
    /// piled up behind saves that do not land).
    CutOff(DocumentId, PeerId),
    /// A peer's changes were refused for crossing the quota.
    Refused(DocumentId, PeerId),
    /// A command of the application's ended (for a flush: whether its save landed).
    Completed(CommandId, bool),
}

enum Step {
    Hub(HubInput),
    Document(DocumentActorId, DocumentInput),
}

/// One repo — a [`HubActor`] and a [`DocumentActor`] per document in memory — driven in one
/// thread on a clock the caller moves, over a [`NodeStore`].
///
/// It does for the actors what tandem-repo's tasks do, and no more: it answers their policy
/// questions from a [`Policy`], reads and writes the store, hands a document's load its answer
/// only once what arrived meanwhile is in, keeps saves in flight until the caller lands or fails
/// them ([`land_save`](Self::land_save)), and queues what they send per connection
/// ([`take_outgoing`](Self::take_outgoing)). A network of nodes ([`Network`](super::Network))
/// or a fault-injecting simulation moves the messages.
pub struct Node {
    peer_id: PeerId,
    config: Arc<DocumentConfig>,
    hub: HubActor,
    docs: BTreeMap<DocumentActorId, NodeDocument>,
    store: Box<dyn NodeStore>,
    policy: Policy,
    /// Connections accepted, by peer (a peer has one at a time).
    by_peer: BTreeMap<PeerId, ConnectionId>,
    joining: Option<PeerId>,
    outgoing: Vec<(ConnectionId, Message)>,
    closing: Vec<ConnectionId>,
    events: Vec<NodeEvent>,
    /// Documents the application holds a handle to: never unloaded.
    held: BTreeSet<DocumentId>,
    steps: VecDeque<Step>,
    loads_due: Vec<DocumentActorId>,
    /// New actors whose load waits for an older actor of the same document to end.
    load_after: BTreeMap<DocumentActorId, DocumentActorId>,
    waiting_loads: BTreeMap<DocumentActorId, DocumentActorId>,
    creating: Option<Automerge>,
    actor_seed: [u8; 16],
    actors_made: u64,
    ephemeral_count: u64,
    commands: u64,
    corrupt_chunks_skipped: usize,
    now: Instant,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id)
            .field("documents", &self.docs.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A repo with `config` (its `local_peer` is the node's peer id) over `store`, whose
    /// documents get automerge actor ids derived from `actor_seed`, starting at `now`.
    pub fn new(
        config: DocumentConfig,
        store: Box<dyn NodeStore>,
        actor_seed: [u8; 16],
        now: Instant,
    ) -> Self {
        Node {
            peer_id: config.local_peer.clone(),
            hub: HubActor::new(config.local_peer.clone(), Default::default()),
            config: Arc::new(config),
            docs: BTreeMap::new(),
            store,
            policy: Policy::default(),
            by_peer: BTreeMap::new(),
            joining: None,
            outgoing: Vec::new(),
            closing: Vec::new(),
            events: Vec::new(),
            held: BTreeSet::new(),
            steps: VecDeque::new(),
            loads_due: Vec::new(),
            load_after: BTreeMap::new(),
            waiting_loads: BTreeMap::new(),
            creating: None,
            actor_seed,
            actors_made: 0,
            ephemeral_count: 0,
            commands: 0,
            corrupt_chunks_skipped: 0,
            now,
        }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> &PeerId {
        &self.peer_id
    }

    /// What it says about itself when it connects.
    pub fn metadata(&self, storage_id: Option<crate::StorageId>) -> PeerMetadata {
        PeerMetadata {
            storage_id,
            is_ephemeral: false,
        }
    }

    /// Replaces its share policy (call [`share_policy_changed`](Self::share_policy_changed) to
    /// have connected peers and documents decide again).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The application holds (or lets go of) a handle to `document_id`: a held document is never
    /// unloaded.
    pub fn hold(&mut self, document_id: &DocumentId, held: bool) {
        if held {
            self.held.insert(document_id.clone());
        } else {
            self.held.remove(document_id);
        }
    }

    /// The clock moved to `now`: documents whose timers are due hear so.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        let due: Vec<DocumentActorId> = self
            .docs
            .iter()
            .filter(|(_, d)| d.actor.next_timeout().is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for actor in due {
            self.steps
                .push_back(Step::Document(actor, DocumentInput::Timeout));
        }
        self.run();
    }

    /// The earliest time a document's timer is due.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.docs
            .values()
            .filter_map(|d| d.actor.next_timeout())
            .min()
    }

    // ---- connections ----

    /// A transport joined `peer`, whose credentials allow `grant`; its connection, unless
    /// refused.
    pub fn connect(
        &mut self,
        peer: PeerId,
        metadata: PeerMetadata,
        grant: Grant,
    ) -> Option<ConnectionId> {
        self.joining = Some(peer.clone());
        let command = self.command();
        let effects = self.hub.handle(
            self.now,
            HubInput::Connect {
                command,
                peer,
                metadata,
                grant,
            },
        );
        let connection = effects.iter().find_map(|e| match e {
            HubEffect::Accepted { connection, .. } => Some(*connection),
            _ => None,
        });
        self.hub_effects(effects);
        self.run();
        connection
    }

    /// A connection ended.
    pub fn disconnect(&mut self, connection: ConnectionId) {
        self.steps
            .push_back(Step::Hub(HubInput::Disconnected(connection)));
        self.run();
    }

    /// A message arrived on a connection.
    pub fn receive(&mut self, connection: ConnectionId, message: Message) {
        self.steps.push_back(Step::Hub(HubInput::Incoming {
            connection,
            message,
        }));
        self.run();
    }

    /// What the node sent since the last call, per connection, in order.
    pub fn take_outgoing(&mut self) -> Vec<(ConnectionId, Message)> {
        std::mem::take(&mut self.outgoing)
    }

    /// Connections the node closed since the last call.
    pub fn take_closing(&mut self) -> Vec<ConnectionId> {
        std::mem::take(&mut self.closing)
    }

    /// What happened since the last call.
    pub fn take_events(&mut self) -> Vec<NodeEvent> {
        std::mem::take(&mut self.events)
    }

    // ---- the application ----

    /// `repo.create()`: a new document (with a fresh actor id of this node's), filled by `fill`.
    pub fn create(&mut self, document_id: DocumentId, fill: impl FnOnce(&mut Automerge)) {
        let mut doc = Automerge::new().with_actor(self.next_actor());
        fill(&mut doc);
        self.creating = Some(doc);
        let command = self.command();
        self.steps.push_back(Step::Hub(HubInput::Create {
            command,
            document_id,
        }));
        self.run();
    }

    /// `repo.find()` (its state is then [`state`](Self::state)); asks again if the document was
    /// unavailable.
    pub fn find(&mut self, document_id: &DocumentId) {
        let command = self.command();
        self.steps.push_back(Step::Hub(HubInput::Find {
            command,
            document_id: document_id.clone(),
            mode: FindMode::Wanted { again: true },
        }));
        self.run();
    }

    /// `repo.find_stored()`: the document from memory or storage, asking no peer.
    pub fn find_stored(&mut self, document_id: &DocumentId) {
        let command = self.command();
        self.steps.push_back(Step::Hub(HubInput::Find {
            command,
            document_id: document_id.clone(),
            mode: FindMode::Stored,
        }));
        self.run();
    }

    /// Changes a ready document and announces the change; whether it was ready.
    pub fn change(&mut self, document_id: &DocumentId, f: impl FnOnce(&mut Automerge)) -> bool {
        let Some(actor) = self.hub.actor_of(document_id) else {
            return false;
        };
        let Some(doc) = self.docs.get_mut(&actor) else {
            return false;
        };
        if doc.actor.state() != HandleState::Ready {
            return false;
        }
        f(&mut doc.doc);
        self.steps
            .push_back(Step::Document(actor, DocumentInput::LocalChange));
        self.run();
        true
    }

    /// `handle.broadcast(data)`.
    pub fn broadcast(&mut self, document_id: &DocumentId, data: MessageData) {
        let Some(actor) = self.hub.actor_of(document_id) else {
            return;
        };
        self.ephemeral_count += 1;
        let count = self.ephemeral_count;
        self.steps.push_back(Step::Document(
            actor,
            DocumentInput::Broadcast { data, count },
        ));
        self.run();
    }

    /// `repo.delete()`.
    pub fn delete(&mut self, document_id: &DocumentId) {
        let command = self.command();
        self.steps.push_back(Step::Hub(HubInput::Delete {
            command,
            document_id: document_id.clone(),
        }));
        self.run();
    }

    /// `repo.flush()` (`None`: every document).
    pub fn flush(&mut self, documents: Option<Vec<DocumentId>>) {
        let command = self.command();
        self.steps
            .push_back(Step::Hub(HubInput::Flush { command, documents }));
        self.run();
    }

    /// `repo.share_policy_changed()`.
    pub fn share_policy_changed(&mut self) {
        let command = self.command();
        self.steps
            .push_back(Step::Hub(HubInput::SharePolicyChanged { command }));
        self.run();
    }

    /// Client transports start (`true`) or end (`false`) their first attempt to connect, as
    /// tandem-repo tells its hub: finds made meanwhile wait for them.
    pub fn networks_settling(&mut self, settling: bool) {
        self.steps
            .push_back(Step::Hub(HubInput::NetworksSettling(settling)));
        self.run();
    }

    /// The hub unloads `document_id` as if it had gone idle with nobody holding it: it saves and
    /// leaves memory. Whether it was in memory and settled.
    pub fn evict(&mut self, document_id: &DocumentId) -> bool {
        let Some(actor) = self.hub.actor_of(document_id) else {
            return false;
        };
        if !self
            .docs
            .get(&actor)
            .is_some_and(|d| d.actor.state().is_settled())
        {
            return false;
        }
        self.steps
            .push_back(Step::Hub(HubInput::Evict(document_id.clone())));
        self.run();
        true
    }

    // ---- what a test looks at ----

    /// The document in memory (the hub's current actor for it).
    pub fn document(&self, document_id: &DocumentId) -> Option<&NodeDocument> {
        self.docs.get(&self.hub.actor_of(document_id)?)
    }

    /// The document's handle state, if it is in memory.
    pub fn state(&self, document_id: &DocumentId) -> Option<HandleState> {
        Some(self.document(document_id)?.actor.state())
    }

    /// Every document actor alive (in memory or stopping).
    pub fn documents(&self) -> impl Iterator<Item = &NodeDocument> {
        self.docs.values()
    }

    /// The documents the hub holds in memory.
    pub fn loaded(&self) -> Vec<DocumentId> {
        self.hub.documents().map(|(id, _)| id.clone()).collect()
    }

    /// The hub's introductions (see [`HubActor::introductions`]).
    pub fn introductions(&self) -> usize {
        self.hub.introductions()
    }

    /// Chunks the loads skipped as corrupt.
    pub fn corrupt_chunks_skipped(&self) -> usize {
        self.corrupt_chunks_skipped
    }

    // ---- saves ----

    /// Documents with a save written and not yet landed.
    pub fn saves_in_flight(&self) -> Vec<DocumentActorId> {
        self.docs
            .iter()
            .filter(|(_, d)| d.saving.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether any document has a save in flight or scheduled.
    pub fn saves_pending(&self) -> bool {
        self.docs
            .values()
            .any(|d| d.saving.is_some() || d.actor.save_scheduled())
    }

    /// The change hashes `actor`'s save in flight makes durable when it lands.
    pub fn save_holds(&self, actor: DocumentActorId) -> Vec<ChangeHash> {
        self.docs
            .get(&actor)
            .and_then(|d| d.saving.as_ref())
            .map(|(_, _, holds)| holds.clone())
            .unwrap_or_default()
    }

    /// The document of an actor.
    pub fn document_of(&self, actor: DocumentActorId) -> Option<&DocumentId> {
        self.docs.get(&actor).map(|d| &d.document_id)
    }

    /// `actor`'s save in flight lands (the store syncs, the chunks it replaces go) or fails.
    pub fn land_save(&mut self, actor: DocumentActorId, landed: bool) {
        let Some((save, job, _)) = self.docs.get_mut(&actor).and_then(|d| d.saving.take()) else {
            return;
        };
        let outcome = if landed {
            self.store.sync();
            if let Some(plan) = &job.plan {
                let mut obsolete = plan.obsolete.clone();
                obsolete.sort();
                for key in &obsolete {
                    self.store.remove(key);
                }
            }
            SaveOutcome {
                chunk_stored: true,
                saved_plan: job.plan,
                unsaved_sync_states: Default::default(),
                result: Ok(()),
                snapshot_refused: None,
                retry_after: self.config.save_debounce,
            }
        } else {
            SaveOutcome {
                chunk_stored: false,
                saved_plan: None,
                unsaved_sync_states: job.sync_states,
                result: Err(StorageError::Io {
                    key: StorageKey::new(["save"]),
                    source: std::io::Error::other("the test failed this save"),
                }),
                snapshot_refused: None,
                retry_after: self.config.save_debounce,
            }
        };
        self.steps.push_back(Step::Document(
            actor,
            DocumentInput::Saved { save, outcome },
        ));
        self.run();
    }

    // ---- the driver ----

    fn command(&mut self) -> CommandId {
        self.commands += 1;
        CommandId(self.commands)
    }

    fn next_actor(&mut self) -> ActorId {
        self.actors_made += 1;
        let mut bytes = self.actor_seed;
        for (byte, count) in bytes.iter_mut().zip(self.actors_made.to_le_bytes()) {
            *byte ^= count;
        }
        ActorId::from(bytes.to_vec())
    }

    /// Runs every step, then the loads that became due, until nothing is left.
    fn run(&mut self) {
        loop {
            while let Some(step) = self.steps.pop_front() {
                match step {
                    Step::Hub(input) => {
                        let effects = self.hub.handle(self.now, input);
                        self.hub_effects(effects);
                    }
                    Step::Document(actor, input) => self.document_step(actor, input),
                }
            }
            if self.loads_due.is_empty() {
                return;
            }
            for actor in std::mem::take(&mut self.loads_due) {
                self.load(actor);
            }
        }
    }

    fn hub_effects(&mut self, effects: Vec<HubEffect>) {
        for effect in effects {
            match effect {
                HubEffect::Accepted { connection, .. } => {
                    if let Some(peer) = self.joining.take() {
                        self.by_peer.insert(peer, connection);
                    }
                }
                HubEffect::Refused(_) => self.joining = None,
                HubEffect::Close(connection) => self.closing.push(connection),
                HubEffect::EphemeralLimited { .. } => {}
                HubEffect::Send(connection, message) => self.outgoing.push((connection, message)),
                HubEffect::Ask { question, peer } => {
                    let allowed = (self.policy.announce)(&peer, None);
                    self.steps
                        .push_back(Step::Hub(HubInput::Answered { question, allowed }));
                }
                HubEffect::PeerJoined { .. } | HubEffect::Gossip { .. } => {}
                HubEffect::PeerLeft(peer) => {
                    self.by_peer.remove(&peer);
                }
                HubEffect::Spawn {
                    actor,
                    document_id,
                    start,
                    peers,
                    after,
                } => {
                    let created = match start {
                        crate::document::Start::Created => self.creating.take(),
                        crate::document::Start::Load { .. } => None,
                    };
                    let doc = match created {
                        Some(doc) => doc,
                        None => Automerge::new().with_actor(self.next_actor()),
                    };
                    let peers: Vec<PeerInfo> = peers.into_iter().map(|(p, _)| p).collect();
                    let actor_state = DocumentActor::new(
                        self.config.clone(),
                        document_id.clone(),
                        start,
                        peers,
                        &doc,
                        self.now,
                    );
                    self.docs.insert(
                        actor,
                        NodeDocument {
                            document_id,
                            doc,
                            actor: actor_state,
                            saving: None,
                        },
                    );
                    if let Some(after) = after.filter(|a| self.docs.contains_key(a)) {
                        self.load_after.insert(actor, after);
                    }
                    let Some(d) = self.docs.get_mut(&actor) else {
                        continue;
                    };
                    let effects = d.actor.start(self.now, &mut d.doc);
                    self.document_effects(actor, effects);
                }
                HubEffect::Tell { actor, event } => {
                    let input = match event {
                        DocumentEvent::PeerConnected { peer, .. } => {
                            DocumentInput::PeerConnected(peer)
                        }
                        DocumentEvent::PeerDisconnected(peer) => {
                            DocumentInput::PeerDisconnected(peer)
                        }
                        DocumentEvent::Incoming {
                            from,
                            metadata,
                            granted,
                            message,
                            ..
                        } => DocumentInput::Incoming {
                            from,
                            metadata,
                            granted,
                            message,
                        },
                        DocumentEvent::WantedLocally => DocumentInput::WantedLocally,
                        DocumentEvent::AwaitNetworks => DocumentInput::AwaitNetworks,
                        DocumentEvent::NetworksSettled => DocumentInput::NetworksSettled,
                        DocumentEvent::RequestAgain(_) => {
                            DocumentInput::RequestAgain(self.command())
                        }
                        DocumentEvent::SharePolicyChanged { peers, .. } => {
                            DocumentInput::SharePolicyChanged {
                                peers: peers.into_iter().map(|(p, _)| p).collect(),
                                command: self.command(),
                            }
                        }
                        DocumentEvent::Flush(_) => DocumentInput::Flush(self.command()),
                        DocumentEvent::Stop(_) => DocumentInput::Stop(self.command()),
                        DocumentEvent::Delete(_) => DocumentInput::Delete(self.command()),
                    };
                    self.steps.push_back(Step::Document(actor, input));
                }
                HubEffect::Forgotten(_) | HubEffect::Completed(_) => {}
                HubEffect::Found { .. } => {}
            }
        }
    }

    fn document_step(&mut self, actor: DocumentActorId, input: DocumentInput) {
        let Some(d) = self.docs.get_mut(&actor) else {
            return;
        };
        let effects = d.actor.handle(self.now, input, &mut d.doc);
        self.document_effects(actor, effects);
    }

    fn document_effects(&mut self, actor: DocumentActorId, effects: Vec<DocumentEffect>) {
        for effect in effects {
            let Some(document_id) = self.docs.get(&actor).map(|d| d.document_id.clone()) else {
                return;
            };
            match effect {
                DocumentEffect::Send(message) => {
                    let connection = message.target_id().and_then(|t| self.by_peer.get(t));
                    if let Some(connection) = connection {
                        self.outgoing.push((*connection, message));
                    }
                }
                DocumentEffect::Disconnect(peer) => {
                    if let Some(connection) = self.by_peer.get(&peer) {
                        self.closing.push(*connection);
                    }
                    self.events.push(NodeEvent::CutOff(document_id, peer));
                }
                DocumentEffect::Ask {
                    question,
                    peer,
                    ask,
                } => {
                    let answer = match ask {
                        ShareQuestion::Announce => {
                            ShareAnswer::Announce((self.policy.announce)(&peer, Some(&document_id)))
                        }
                        ShareQuestion::Access => {
                            ShareAnswer::Access((self.policy.access)(&peer, &document_id))
                        }
                    };
                    self.steps.push_back(Step::Document(
                        actor,
                        DocumentInput::Answered { question, answer },
                    ));
                }
                DocumentEffect::LoadSyncState { read, storage_id } => {
                    let key = ChunkKey::sync_state(document_id, &storage_id).to_storage_key();
                    let state = self.store.get(&key);
                    self.steps.push_back(Step::Document(
                        actor,
                        DocumentInput::SyncStateLoaded { read, state },
                    ));
                }
                DocumentEffect::Load => match self.load_after.remove(&actor) {
                    Some(after) => {
                        self.waiting_loads.insert(after, actor);
                    }
                    None => self.loads_due.push(actor),
                },
                DocumentEffect::Save { save, job } => self.save(actor, document_id, save, job),
                DocumentEffect::RemoveDocument { tombstone } => {
                    if tombstone {
                        self.store
                            .put(StorageKey::tombstone(&document_id), b"deleted".to_vec());
                        self.store.sync();
                    }
                    let keys: Vec<StorageKey> = ChunkKind::ALL
                        .iter()
                        .flat_map(|kind| self.store.range(&kind.prefix(&document_id)))
                        .map(|(key, _)| key)
                        .collect();
                    for key in keys {
                        self.store.remove(&key);
                    }
                    self.steps
                        .push_back(Step::Document(actor, DocumentInput::Removed(Ok(()))));
                }
                DocumentEffect::State(state) => {
                    self.events.push(NodeEvent::State(document_id, state));
                }
                DocumentEffect::Ephemeral {
                    sender,
                    session_id,
                    count,
                    data,
                } => {
                    self.events.push(NodeEvent::Ephemeral {
                        document_id,
                        sender,
                        session_id,
                        count,
                        data,
                    });
                }
                DocumentEffect::Idle { available } => {
                    if !self.held.contains(&document_id) {
                        self.steps
                            .push_back(Step::Hub(HubInput::DocumentIdle { actor, available }));
                    }
                }
                DocumentEffect::Completed { command, result } => {
                    self.events
                        .push(NodeEvent::Completed(command, result.is_ok()));
                }
                DocumentEffect::Imported { command, result } => {
                    self.events
                        .push(NodeEvent::Completed(command, result.is_ok()));
                }
                DocumentEffect::Stopped => {
                    self.docs.remove(&actor);
                    self.steps
                        .push_back(Step::Hub(HubInput::DocumentStopped(actor)));
                    if let Some(waiting) = self.waiting_loads.remove(&actor) {
                        self.loads_due.push(waiting);
                    }
                    return;
                }
                DocumentEffect::Refused { peer, .. } => {
                    self.steps.push_back(Step::Hub(HubInput::WritesRefused {
                        peer: peer.clone(),
                        document_id: document_id.clone(),
                    }));
                    self.events.push(NodeEvent::Refused(document_id, peer));
                }
                DocumentEffect::Changed(_)
                | DocumentEffect::RemoteHeads { .. }
                | DocumentEffect::PeerOpened(_)
                | DocumentEffect::Acknowledged { .. } => {}
            }
        }
    }

    fn load(&mut self, actor: DocumentActorId) {
        let Some(d) = self.docs.get_mut(&actor) else {
            return;
        };
        let id = d.document_id.clone();
        if self.store.get(&StorageKey::tombstone(&id)).is_some() {
            let loaded = Loaded {
                ledger: None,
                found: false,
                deleted: true,
            };
            self.steps
                .push_back(Step::Document(actor, DocumentInput::Loaded(loaded)));
            return;
        }
        let mut chunks = self.store.range(&ChunkKind::Snapshot.prefix(&id));
        chunks.extend(self.store.range(&ChunkKind::Incremental.prefix(&id)));
        let loaded = load_document(&id, chunks);
        self.corrupt_chunks_skipped += loaded.corrupt.len();
        let loaded = take_in_stored(&mut d.doc, loaded);
        self.steps
            .push_back(Step::Document(actor, DocumentInput::Loaded(loaded)));
    }

    fn save(
        &mut self,
        actor: DocumentActorId,
        document_id: DocumentId,
        save: SaveId,
        job: SaveJob,
    ) {
        if let Some(Err(why)) = job
            .plan
            .as_ref()
            .filter(|p| p.needs_check())
            .map(|p| p.check_snapshot())
        {
            let outcome = SaveOutcome {
                chunk_stored: false,
                saved_plan: None,
                unsaved_sync_states: job.sync_states,
                result: Ok(()),
                snapshot_refused: Some(why),
                retry_after: self.config.save_debounce,
            };
            self.steps.push_back(Step::Document(
                actor,
                DocumentInput::Saved { save, outcome },
            ));
            return;
        }
        if let Some(plan) = &job.plan {
            self.store.put(plan.key.clone(), plan.bytes.clone());
        }
        for (storage_id, bytes) in &job.sync_states {
            let key = ChunkKey::sync_state(document_id.clone(), storage_id).to_storage_key();
            self.store.put(key, bytes.clone());
        }
        if let Some(d) = self.docs.get_mut(&actor) {
            // A chunk holds every change the document had when the save started.
            let holds = match &job.plan {
                Some(_) => d.doc.get_changes(&[]).iter().map(|c| c.hash()).collect(),
                None => Vec::new(),
            };
            d.saving = Some((save, job, holds));
        }
    }
}
