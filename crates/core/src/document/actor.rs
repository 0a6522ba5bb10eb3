//! The document actor: every decision about one document, as a state machine.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::sync::State as SyncState;
use automerge::{Automerge, ChangeHash, Patch, PatchLog};
use tracing::{debug, warn};

use super::durable_acks::DurableAcks;
use super::ids::Counter;
use super::share::{ShareRule, ShareStep};
use super::{
    Changed, CommandId, DocumentEffect, DocumentInput, PeerInfo, QuestionId, ReadId, SaveId,
    SaveJob, SaveOutcome, ShareAnswer, ShareQuestion,
};
use crate::persistence::{ChunkLedger, Loaded};
use crate::sync::{DocumentSync, HandleState, SyncOutput};
use crate::untrusted::{apply_untrusted, OverQuota, Quota};
use crate::vec_map::VecMap;
use crate::{
    Access, DocUnavailableMessage, DocumentId, EphemeralMessage, Message, MessageData, PeerId,
    PeerMetadata, SessionId, StorageError, StorageId,
};

/// Refusals of one peer's changes to a document, after which the peer is cut off at each
/// further one.
const MAX_REFUSALS: u32 = 3;

/// Documents of at most this many stored bytes are compacted in memory once loaded and saved
/// ([`DocumentActor::compact`]).
const COMPACT_AT_MOST: u64 = 64 * 1024;

/// What every document of one repo shares: who we are and how we time things.
#[derive(Debug, Clone)]
pub struct DocumentConfig {
    /// This repo's peer id.
    pub local_peer: PeerId,
    /// This repo's ephemeral session.
    pub session_id: SessionId,
    /// Whether the repo has storage (without it nothing is saved or read).
    pub storage: bool,
    /// How long after a change its save starts (later changes join that save).
    pub save_debounce: Duration,
    /// How long a find waits for peers before the document is unavailable.
    pub find_timeout: Duration,
    /// How long a document may sit idle before it is offered for unloading; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Messages to a peer whose changes were applied wait until those changes are saved.
    pub durable_acknowledgement: bool,
    /// At most this many messages, to all the document's writers together, wait for its saves
    /// (only saves that keep failing or never end let them pile up). Past it, the writers are
    /// cut off; they keep their unacknowledged changes and send them again when they reconnect.
    pub max_held: usize,
    /// At most this many bytes of messages (about: [`Message::approximate_size`]) wait for a
    /// document's saves, cut off as past [`max_held`](Self::max_held).
    pub max_held_bytes: usize,
    /// A delete leaves a tombstone in storage, so that no peer still holding the document can
    /// bring it back (here, or in any repo on the same storage). Tombstones found in storage are
    /// honoured either way.
    pub tombstones: bool,
    /// How large a change, and a document, peers' changes may make ([`Quota`]). Changes beyond
    /// are refused: not applied, stored, relayed or acknowledged.
    pub quota: Quota,
}

impl DocumentConfig {
    /// automerge-repo's timing (100 ms save debounce, 60 s find timeout), no idle unloading,
    /// no storage, no durable acknowledgement.
    pub fn new(local_peer: PeerId, session_id: SessionId) -> Self {
        DocumentConfig {
            local_peer,
            session_id,
            storage: false,
            save_debounce: Duration::from_millis(100),
            find_timeout: Duration::from_secs(60),
            idle_timeout: None,
            durable_acknowledgement: false,
            max_held: 1 << 16,
            max_held_bytes: usize::MAX,
            tombstones: false,
            quota: Quota::default(),
        }
    }
}

/// How a document comes into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Found: read storage first, then ask peers if storage lacks it.
    Load {
        /// Found through the application (not only for a peer): any peer may be asked for it.
        wanted_locally: bool,
        /// Transports that connect out have not all made their first attempt: a document wanted
        /// here that nobody has yet waits for them before it is unavailable. Only meant with
        /// `wanted_locally` (a document loaded for a peer does not wait).
        networks_settling: bool,
    },
    /// Created or imported here: ready at once.
    Created,
}

/// Patches of local changes, logged as they were made, leading from one set of heads to another.
#[derive(Debug, Clone)]
pub struct LoggedPatches {
    /// The heads before.
    pub from: Vec<ChangeHash>,
    /// The heads after.
    pub to: Vec<ChangeHash>,
    /// The patches.
    pub patches: Vec<Patch>,
}

/// What the actor waits for before it takes the next input from its queue.
#[derive(Debug)]
enum Waiting {
    /// Storage being read into the document.
    Load,
    /// A share-policy answer.
    Answer {
        question: QuestionId,
        then: AfterAnswer,
    },
    /// A stored sync state.
    SyncState { read: ReadId, then: AfterSyncState },
    /// Stopping: the save numbered `number` (or a later one) must land first.
    FinalSave { command: CommandId, number: u64 },
    /// Deleting: the save in flight must end first, or it could recreate a chunk afterwards.
    SaveInFlight { command: CommandId },
    /// Deleting: storage is removing the document.
    Removal { command: CommandId },
}

#[derive(Debug)]
enum AfterAnswer {
    /// Deciding whether to share with a peer.
    Share {
        peer: PeerInfo,
        rule: ShareRule,
        reason: ShareReason,
    },
    /// A peer not in the sync set sent a message: it needs access.
    Incoming {
        peer: PeerId,
        message: Message,
        known: bool,
        /// What its connection's credentials allow.
        granted: Access,
    },
}

#[derive(Debug, Clone, Copy)]
enum ShareReason {
    /// The peer connected (or the document came into memory, or was wanted here).
    Connected { known: bool },
    /// The share policy changed.
    PolicyChanged { known: bool },
}

#[derive(Debug)]
enum AfterSyncState {
    AddPeer {
        peer: PeerId,
        known: bool,
    },
    Receive {
        peer: PeerId,
        message: Message,
        known: bool,
    },
}

/// One unit of queued work.
#[derive(Debug)]
enum Work {
    Input(DocumentInput),
    /// One peer of a share-policy change.
    Reconsider(PeerInfo),
    /// The last step of a command made of several.
    Complete(CommandId),
    /// Storage has been read and the peers known at the start are in: speak.
    FinishLoading,
}

/// One document's decisions: whom to sync with (the share policy's questions), what to send
/// ([`DocumentSync`]), when and what to save ([`ChunkLedger`]), which answers wait for a save
/// (durable acknowledgement), when a find gives up, when the document may leave memory.
///
/// Sans-IO: the driver feeds [`DocumentInput`]s with the current time and the document, and
/// performs the [`DocumentEffect`]s that come back, in order. Effects that need an answer
/// (a policy question, a stored sync state, a load, a save) name an id; the answer comes back
/// as an input with that id. While a question or a read is out, later inputs wait in the
/// actor's queue, so they are decided in the order they came, as if the answer had been
/// immediate. Timers: after each step, [`next_timeout`](Self::next_timeout) says when to feed
/// [`DocumentInput::Timeout`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Instant;
/// use automerge::Automerge;
/// use tandem_core::document::{DocumentActor, DocumentConfig, DocumentEffect, DocumentInput, Start};
/// use tandem_core::persistence::Loaded;
/// use tandem_core::sync::HandleState;
/// use tandem_core::{DocumentId, PeerId, SessionId};
///
/// let config = Arc::new(DocumentConfig::new(PeerId::from("me"), SessionId::random()));
/// let mut doc = Automerge::new();
/// let now = Instant::now();
/// let start = Start::Load { wanted_locally: true, networks_settling: false };
/// let mut actor = DocumentActor::new(config, DocumentId::random(), start, Vec::new(), &doc, now);
/// // A find reads storage first; here it held nothing...
/// let effects = actor.start(now, &mut doc);
/// assert!(matches!(effects[..], [DocumentEffect::Load]));
/// let loaded = Loaded { ledger: None, found: false, deleted: false };
/// let effects = actor.handle(now, DocumentInput::Loaded(loaded), &mut doc);
/// // ...and with no peers, nobody can have it.
/// assert!(effects.iter().any(|e| matches!(e, DocumentEffect::State(HandleState::Unavailable))));
/// ```
#[derive(Debug)]
pub struct DocumentActor {
    config: Arc<DocumentConfig>,
    document_id: DocumentId,
    start: Start,
    sync: DocumentSync,
    ledger: ChunkLedger,
    acks: DurableAcks,
    /// When the first peer change each save number will make durable arrived (for
    /// [`DocumentEffect::Acknowledged`]).
    unacknowledged_since: BTreeMap<u64, Instant>,
    /// Connected peers this document knows of (it was told of them, or heard from them). A
    /// sorted vector: one or two as a rule, where a hash map allocated room for three.
    peers: VecMap<PeerId, PeerMetadata>,
    /// Those of them that are other nodes of the cluster (a handful at most).
    cluster_nodes: Vec<PeerId>,
    /// The heads the last change event ended at.
    last_heads: Vec<ChangeHash>,
    save_at: Option<Instant>,
    find_deadline: Option<Instant>,
    last_activity: Instant,
    /// When the last save started: a document saved again within the save debounce is being
    /// written to without pause, and its acknowledged saves are quick ones.
    last_save_at: Option<Instant>,
    dirty_sync_states: BTreeMap<StorageId, Vec<u8>>,
    wanted_locally: bool,
    /// Storage holds the document's tombstone: every peer is told it is unavailable, and none
    /// of their changes is taken.
    deleted: bool,
    /// Peers whose changes were refused for the quota, and how often.
    refusals: Vec<(PeerId, u32)>,
    /// The save in flight (one at a time).
    saving: Option<SaveId>,
    /// Flushes waiting for a save number to land.
    flushes: Vec<(CommandId, u64)>,
    /// Patches of the change just applied or announced, with the heads they lead to.
    logged_patches: Option<(Vec<ChangeHash>, Vec<Patch>)>,
    /// Patches of local changes not yet announced.
    local_patches: Option<LoggedPatches>,
    /// Someone listens for change events: log patches as changes are applied.
    listening: bool,
    /// Changes were saved since the document was last compacted ([`Self::compact`]).
    uncompacted: bool,
    /// Boxed: most documents wait for nothing most of the time.
    waiting: Option<Box<Waiting>>,
    queue: VecDeque<Work>,
    questions: Counter,
    reads: Counter,
    ended: bool,
    now: Instant,
    effects: Vec<DocumentEffect>,
}

impl DocumentActor {
    /// A document coming into memory as `start` says, with the peers it may talk to at once
    /// (those the policy offers anything, and, for a document wanted here, every peer). `doc`
    /// is the document as it is now (empty for a find).
    pub fn new(
        config: Arc<DocumentConfig>,
        document_id: DocumentId,
        start: Start,
        peers: Vec<PeerInfo>,
        doc: &Automerge,
        now: Instant,
    ) -> Self {
        let state = match start {
            Start::Load { .. } => HandleState::Loading,
            Start::Created => HandleState::Ready,
        };
        let mut sync = DocumentSync::new(document_id.clone(), config.local_peer.clone(), state);
        if let Start::Load {
            wanted_locally: true,
            networks_settling: true,
        } = start
        {
            sync.await_networks();
        }
        DocumentActor {
            sync,
            ledger: ChunkLedger::new(document_id.clone()),
            acks: DurableAcks::new(),
            unacknowledged_since: BTreeMap::new(),
            peers: VecMap::default(),
            cluster_nodes: Vec::new(),
            last_heads: doc.get_heads(),
            save_at: None,
            find_deadline: None,
            last_activity: now,
            last_save_at: None,
            dirty_sync_states: BTreeMap::new(),
            wanted_locally: matches!(
                start,
                Start::Load {
                    wanted_locally: true,
                    ..
                }
            ),
            deleted: false,
            refusals: Vec::new(),
            saving: None,
            flushes: Vec::new(),
            logged_patches: None,
            local_patches: None,
            listening: false,
            uncompacted: false,
            waiting: None,
            queue: peers
                .into_iter()
                .map(|peer| Work::Input(DocumentInput::PeerConnected(peer)))
                .collect(),
            questions: Counter::default(),
            reads: Counter::default(),
            ended: false,
            now,
            effects: Vec::new(),
            config,
            document_id,
            start,
        }
    }

    /// The first step: reads storage (for a find) or schedules the first save (for a document
    /// made here), and greets the peers given to [`new`](Self::new).
    pub fn start(&mut self, now: Instant, doc: &mut Automerge) -> Vec<DocumentEffect> {
        self.now = now;
        match self.start {
            Start::Load { .. } => {
                self.wait(Waiting::Load);
                self.effects.push(DocumentEffect::Load);
            }
            Start::Created => self.schedule_save(),
        }
        self.run_queue(doc);
        std::mem::take(&mut self.effects)
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(
        &mut self,
        now: Instant,
        input: DocumentInput,
        doc: &mut Automerge,
    ) -> Vec<DocumentEffect> {
        self.now = now;
        if !self.ended {
            self.input(input, doc);
            self.run_queue(doc);
        }
        std::mem::take(&mut self.effects)
    }

    /// When to feed [`DocumentInput::Timeout`] next, if ever.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let save = self.save_at.filter(|_| self.saving.is_none());
        let idle = self
            .config
            .idle_timeout
            .map(|idle| self.last_activity + idle);
        [save, self.find_deadline, idle].into_iter().flatten().min()
    }

    /// Notes patches of local changes, logged as they were made, for the change event that
    /// announces them. Patches that continue those noted extend them; others replace them (the
    /// event then goes without, and a driver with listeners diffs).
    pub fn note_local_patches(&mut self, logged: LoggedPatches) {
        match self.local_patches.as_mut() {
            Some(pending) if pending.to == logged.from => {
                pending.to = logged.to;
                pending.patches.extend(logged.patches);
            }
            _ => self.local_patches = Some(logged),
        }
    }

    /// Whether anyone listens for change events (then patches are logged as changes are
    /// applied, which costs in proportion to the change rather than the document).
    pub fn set_listening(&mut self, listening: bool) {
        self.listening = listening;
    }

    /// The document.
    pub fn document_id(&self) -> &DocumentId {
        &self.document_id
    }

    /// The handle's state.
    pub fn state(&self) -> HandleState {
        self.sync.state()
    }

    /// The peers in the document's sync set.
    pub fn sync_peers(&self) -> impl Iterator<Item = &PeerId> {
        self.sync.peers()
    }

    /// Whether a peer's acknowledgement waits on a save no started save holds yet: the driver
    /// may let inputs already queued join the save that is about to start.
    pub fn waiting_on_next_save(&self) -> bool {
        self.acks.waiting_on_next_save()
    }

    /// Bytes of automerge data held by the step the actor waits to finish (a sync message
    /// waiting on an answer): what answering may cost.
    pub fn waiting_weight(&self) -> usize {
        match self.waiting.as_deref() {
            Some(Waiting::Answer {
                then: AfterAnswer::Incoming { message, .. },
                ..
            })
            | Some(Waiting::SyncState {
                then: AfterSyncState::Receive { message, .. },
                ..
            }) => match message {
                Message::Sync(m) | Message::Request(m) => m.data.as_bytes().len(),
                _ => 0,
            },
            _ => 0,
        }
    }

    /// The heads `peer` last said it has (see [`DocumentSync::peer_heads`]).
    pub fn peer_heads(&self, peer: &PeerId) -> Option<Vec<ChangeHash>> {
        self.sync.peer_heads(peer)
    }

    /// Whether a save is scheduled (not yet started).
    pub fn save_scheduled(&self) -> bool {
        self.save_at.is_some()
    }

    /// Whether `peer` is a connected peer the document knows of.
    pub fn knows_peer(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// Whether the actor has ended (stopped or deleted).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    // ---- inputs ----

    fn wait(&mut self, waiting: Waiting) {
        self.waiting = Some(Box::new(waiting));
    }

    fn take_waiting(&mut self) -> Option<Waiting> {
        self.waiting.take().map(|waiting| *waiting)
    }

    fn input(&mut self, input: DocumentInput, doc: &mut Automerge) {
        match input {
            DocumentInput::Answered { question, answer } => match self.take_waiting() {
                Some(Waiting::Answer {
                    question: expected,
                    then,
                    ..
                }) if expected == question => self.answered(answer, then, doc),
                other => {
                    debug!(?question, "an answer nobody waits for; ignored");
                    self.waiting = other.map(Box::new);
                }
            },
            DocumentInput::SyncStateLoaded { read, state } => match self.take_waiting() {
                Some(Waiting::SyncState {
                    read: expected,
                    then,
                }) if expected == read => self.sync_state_loaded(state, then, doc),
                other => {
                    debug!(?read, "a sync state nobody waits for; ignored");
                    self.waiting = other.map(Box::new);
                }
            },
            DocumentInput::Loaded(loaded) => match self.take_waiting() {
                Some(Waiting::Load) if loaded.deleted => self.found_tombstone(),
                Some(Waiting::Load) => {
                    self.loaded(loaded, doc);
                    self.queue.push_back(Work::FinishLoading);
                }
                other => self.waiting = other.map(Box::new),
            },
            DocumentInput::Saved { save, outcome } => self.save_finished(save, outcome, doc),
            DocumentInput::Removed(result) => match self.take_waiting() {
                Some(Waiting::Removal { command }) => {
                    if let Err(error) = &result {
                        warn!(%error, "the deleted document could not be removed from storage");
                    }
                    self.complete(command, result);
                    self.end();
                }
                other => self.waiting = other.map(Box::new),
            },
            DocumentInput::Timeout => self.timeout(doc),
            // The common case, nothing held back: straight in, without a trip through the queue.
            other if self.waiting.is_none() && self.queue.is_empty() => {
                self.queued_input(other, doc)
            }
            other => self.queue.push_back(Work::Input(other)),
        }
    }

    fn run_queue(&mut self, doc: &mut Automerge) {
        while self.waiting.is_none() && !self.ended {
            let Some(work) = self.queue.pop_front() else {
                break;
            };
            match work {
                Work::Input(input) => self.queued_input(input, doc),
                Work::Reconsider(peer) => self.begin_share(
                    peer.clone(),
                    ShareReason::PolicyChanged {
                        known: self.sync.has_peer(&peer.peer),
                    },
                    doc,
                ),
                Work::Complete(command) => self.complete(command, Ok(())),
                Work::FinishLoading => {
                    // Looked for only in storage (and asked for by no peer meanwhile): a
                    // document storage lacks is asked of nobody.
                    let look_elsewhere = self.wanted_locally || self.sync.anyone_asked();
                    let out = self.sync.finish_loading(doc, look_elsewhere);
                    self.apply(out, None, doc);
                }
            }
        }
        // Thousands of documents sit idle with an empty queue: none keeps room for one.
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
    }

    fn queued_input(&mut self, input: DocumentInput, doc: &mut Automerge) {
        // Another node's traffic alone does not keep the document here: that node holds it for
        // its own clients, and finds it in the storage we share.
        let from_cluster_node = match &input {
            DocumentInput::Incoming { from, .. } | DocumentInput::PeerDisconnected(from) => {
                self.cluster_nodes.contains(from)
            }
            DocumentInput::PeerConnected(info) => info.cluster_node,
            _ => false,
        };
        if !matches!(input, DocumentInput::LocalChange) && !from_cluster_node {
            self.last_activity = self.now;
        }
        if self.deleted {
            return self.deleted_input(input, doc);
        }
        match input {
            DocumentInput::PeerConnected(info) => {
                let known = self.sync.has_peer(&info.peer);
                self.peers.insert(info.peer.clone(), info.metadata.clone());
                if info.cluster_node && !self.cluster_nodes.contains(&info.peer) {
                    self.cluster_nodes.push(info.peer.clone());
                }
                if !known {
                    self.begin_share(info, ShareReason::Connected { known }, doc);
                }
            }
            DocumentInput::PeerDisconnected(peer) => {
                self.peers.remove(&peer);
                self.cluster_nodes.retain(|node| *node != peer);
                // Built against the sync state that just ended: not for its next connection.
                self.acks.connection_ended(&peer);
                let out = self.sync.peer_left(&peer);
                self.apply(out, None, doc);
            }
            DocumentInput::Incoming {
                from,
                metadata,
                granted,
                message,
            } => self.incoming(from, metadata, granted, message, doc),
            DocumentInput::LocalChange => self.local_change(doc),
            DocumentInput::Broadcast { data, count } => self.broadcast(data, count),
            DocumentInput::AwaitNetworks => self.sync.await_networks(),
            DocumentInput::NetworksSettled => {
                let out = self.sync.networks_settled();
                self.apply(out, None, doc);
            }
            DocumentInput::WantedLocally => {
                self.wanted_locally = true;
                // Looked for in storage only, it was asked of nobody: now every peer is asked.
                let out = self.sync.request_again(doc);
                self.apply(out, None, doc);
            }
            DocumentInput::Import {
                mut document,
                command,
                ..
            } => {
                // What the application had changed goes out as its own change first.
                self.catch_up_local(doc);
                let result = apply_untrusted(doc, |d| d.merge(&mut document).map(drop));
                if result.is_ok() {
                    self.local_change(doc);
                }
                self.effects
                    .push(DocumentEffect::Imported { command, result });
            }
            DocumentInput::RequestAgain(command) => {
                let out = self.sync.request_again(doc);
                self.apply(out, None, doc);
                self.complete(command, Ok(()));
            }
            DocumentInput::SharePolicyChanged { peers, command } => {
                // Each peer is decided in turn, before anything queued after the change.
                self.queue.push_front(Work::Complete(command));
                for peer in peers.into_iter().rev() {
                    self.queue.push_front(Work::Reconsider(peer));
                }
            }
            DocumentInput::Flush(command) => {
                let number = self.save_now(doc);
                if self.acks.durable_through() >= number {
                    self.complete(command, Ok(()));
                } else {
                    self.flushes.push((command, number));
                }
            }
            DocumentInput::Stop(command) => {
                self.catch_up_local(doc);
                let number = self.save_now(doc);
                if self.acks.durable_through() >= number {
                    self.finish_stop(command, Ok(()));
                } else {
                    self.wait(Waiting::FinalSave { command, number });
                }
            }
            DocumentInput::Delete(command) => {
                if self.saving.is_some() {
                    self.wait(Waiting::SaveInFlight { command });
                } else {
                    self.delete(command, doc);
                }
            }
            DocumentInput::Answered { .. }
            | DocumentInput::SyncStateLoaded { .. }
            | DocumentInput::Loaded(_)
            | DocumentInput::Saved { .. }
            | DocumentInput::Removed(_)
            | DocumentInput::Timeout => {}
        }
    }

    /// Storage says the document was deleted for good: nobody gets it. Found for peers only,
    /// it leaves memory once what is queued has been answered (as an unavailable one does).
    fn found_tombstone(&mut self) {
        debug!("deleted for good (tombstone)");
        self.deleted = true;
        self.sync.set_state(HandleState::Deleted);
        self.publish(HandleState::Deleted);
        if !self.wanted_locally {
            self.effects.push(DocumentEffect::Idle { available: false });
        }
    }

    /// An input for a document deleted for good: peers asking for it hear that it is
    /// unavailable (as for a document that never existed), and nothing they send is taken.
    fn deleted_input(&mut self, input: DocumentInput, doc: &mut Automerge) {
        match input {
            DocumentInput::Incoming {
                from,
                message: Message::Sync(_) | Message::Request(_),
                ..
            } => self.unavailable_to(from),
            // Nothing is merged; the importer learns why from the state, `Deleted`.
            DocumentInput::Import { command, .. } => {
                self.effects.push(DocumentEffect::Imported {
                    command,
                    result: Ok(()),
                });
            }
            DocumentInput::Flush(command) | DocumentInput::SharePolicyChanged { command, .. } => {
                self.complete(command, Ok(()))
            }
            DocumentInput::RequestAgain(command) => self.complete(command, Ok(())),
            DocumentInput::Stop(command) => self.finish_stop(command, Ok(())),
            DocumentInput::Delete(command) => self.delete(command, doc),
            DocumentInput::PeerConnected(_)
            | DocumentInput::PeerDisconnected(_)
            | DocumentInput::Incoming { .. }
            | DocumentInput::LocalChange
            | DocumentInput::Broadcast { .. }
            | DocumentInput::WantedLocally
            | DocumentInput::AwaitNetworks
            | DocumentInput::NetworksSettled
            | DocumentInput::Answered { .. }
            | DocumentInput::SyncStateLoaded { .. }
            | DocumentInput::Loaded(_)
            | DocumentInput::Saved { .. }
            | DocumentInput::Removed(_)
            | DocumentInput::Timeout => {}
        }
    }

    fn unavailable_to(&mut self, peer: PeerId) {
        self.effects
            .push(DocumentEffect::Send(Message::DocUnavailable(
                DocUnavailableMessage {
                    sender_id: self.config.local_peer.clone(),
                    target_id: peer,
                    document_id: self.document_id.clone(),
                },
            )));
    }

    fn loaded(&mut self, loaded: Loaded, doc: &mut Automerge) {
        if let Some(ledger) = loaded.ledger {
            self.ledger = ledger;
        }
        self.sync.set_size(self.ledger.stored_bytes());
        if loaded.found {
            self.last_heads = doc.get_heads();
            self.compact(doc);
        }
    }

    // ---- sharing ----

    fn begin_share(&mut self, peer: PeerInfo, reason: ShareReason, doc: &mut Automerge) {
        if !peer.granted.may_read() {
            // Its credentials exclude the document: no policy answer could change that.
            return self.share_decided(peer, Access::Denied, reason, doc);
        }
        let missing = self.sync.state() != HandleState::Ready;
        // Another node may hold the document for its clients: it is a candidate for every
        // document, whatever the policy announces (only `access` is asked).
        let (announce_any, asked_or_looking) = if peer.cluster_node {
            (false, true)
        } else {
            (
                peer.announce_any,
                peer.synced_before
                    || self.sync.was_asked_by(&peer.peer)
                    || (self.wanted_locally && missing),
            )
        };
        let (rule, step) = ShareRule::start(announce_any, asked_or_looking);
        self.share_step(peer, rule, step, reason, doc);
    }

    fn share_step(
        &mut self,
        peer: PeerInfo,
        rule: ShareRule,
        step: ShareStep,
        reason: ShareReason,
        doc: &mut Automerge,
    ) {
        match step {
            ShareStep::Ask(ask) => {
                let who = peer.peer.clone();
                self.ask(who, ask, AfterAnswer::Share { peer, rule, reason });
            }
            ShareStep::Decided(share) => self.share_decided(peer, share, reason, doc),
        }
    }

    fn share_decided(
        &mut self,
        peer: PeerInfo,
        access: Access,
        reason: ShareReason,
        doc: &mut Automerge,
    ) {
        let known = match reason {
            ShareReason::Connected { known } | ShareReason::PolicyChanged { known } => known,
        };
        // The connection's credentials only narrow what the policy allows.
        let access = access.narrowed_by(peer.granted);
        if access.may_read() {
            let out = self
                .sync
                .set_read_only(doc, &peer.peer, !access.may_write());
            self.apply(out, None, doc);
            if !known {
                self.peers.insert(peer.peer.clone(), peer.metadata);
                self.start_sync(peer.peer, known, doc);
            }
        } else if known && matches!(reason, ShareReason::PolicyChanged { .. }) {
            debug!(peer = %peer.peer, "share policy no longer shares the document with this peer");
            // Built against the sync state that just ended: not for what comes next.
            self.acks.connection_ended(&peer.peer);
            let out = self.sync.remove_peer(&peer.peer);
            self.apply(out, None, doc);
        }
    }

    fn ask(&mut self, peer: PeerId, ask: ShareQuestion, then: AfterAnswer) {
        let question = QuestionId(self.questions.next());
        self.effects.push(DocumentEffect::Ask {
            question,
            peer,
            ask,
        });
        self.wait(Waiting::Answer { question, then });
    }

    fn answered(&mut self, answer: ShareAnswer, then: AfterAnswer, doc: &mut Automerge) {
        match then {
            AfterAnswer::Share { peer, rule, reason } => {
                let step = rule.answer(answer);
                self.share_step(peer, rule, step, reason, doc);
            }
            AfterAnswer::Incoming {
                peer,
                message,
                known,
                granted,
            } => {
                let access = match answer {
                    ShareAnswer::Access(access) => access.narrowed_by(granted),
                    ShareAnswer::Announce(_) => Access::Denied, // not the question asked
                };
                if access.may_read() {
                    let out = self.sync.set_read_only(doc, &peer, !access.may_write());
                    self.apply(out, None, doc);
                    self.incoming_allowed(peer, message, known, doc);
                } else {
                    debug!(%peer, "access denied");
                    self.unavailable_to(peer);
                }
            }
        }
    }

    // ---- syncing ----

    /// The storage id under which `peer`'s sync state would be stored, if one is to be read.
    fn stored_state_of(&self, peer: &PeerId) -> Option<StorageId> {
        if !self.config.storage || self.sync.remembers(peer) {
            return None;
        }
        let metadata = self.peers.get(peer)?;
        if metadata.is_ephemeral {
            return None;
        }
        metadata.storage_id.clone()
    }

    fn read_sync_state(&mut self, storage_id: StorageId, then: AfterSyncState) {
        let read = ReadId(self.reads.next());
        self.effects
            .push(DocumentEffect::LoadSyncState { read, storage_id });
        self.wait(Waiting::SyncState { read, then });
    }

    fn sync_state_loaded(
        &mut self,
        bytes: Option<Vec<u8>>,
        then: AfterSyncState,
        doc: &mut Automerge,
    ) {
        let stored = bytes.and_then(|bytes| match SyncState::decode(&bytes) {
            Ok(state) => Some(state),
            Err(error) => {
                warn!(%error, "stored sync state is corrupt; starting afresh");
                None
            }
        });
        match then {
            AfterSyncState::AddPeer { peer, known } => self.add_peer(peer, stored, known, doc),
            AfterSyncState::Receive {
                peer,
                message,
                known,
            } => self.receive(peer, message, stored, known, doc),
        }
    }

    /// Adds `peer` to the sync set, with the sync state stored for it, and says hello.
    fn start_sync(&mut self, peer: PeerId, known: bool, doc: &mut Automerge) {
        match self.stored_state_of(&peer) {
            Some(storage_id) => {
                self.read_sync_state(storage_id, AfterSyncState::AddPeer { peer, known })
            }
            None => self.add_peer(peer, None, known, doc),
        }
    }

    fn add_peer(
        &mut self,
        peer: PeerId,
        stored: Option<SyncState>,
        known: bool,
        doc: &mut Automerge,
    ) {
        let Some(metadata) = self.peers.get(&peer).cloned() else {
            return; // gone while its state was read
        };
        let out = self.sync.add_peer(doc, peer.clone(), &metadata, stored);
        self.apply(out, None, doc);
        self.opened_by(&peer, known);
    }

    /// Remote-heads gossip hears of peers that start syncing the document.
    fn opened_by(&mut self, peer: &PeerId, known_before: bool) {
        if !known_before && self.sync.has_peer(peer) {
            self.effects.push(DocumentEffect::PeerOpened(peer.clone()));
        }
    }

    fn incoming(
        &mut self,
        peer: PeerId,
        metadata: PeerMetadata,
        granted: Access,
        message: Message,
        doc: &mut Automerge,
    ) {
        let known = self.sync.has_peer(&peer);
        self.peers.insert(peer.clone(), metadata);
        let asks = matches!(message, Message::Sync(_) | Message::Request(_));
        if asks {
            // Even if refused now: should the policy grant access later, the peer is synced
            // with, as in automerge-repo.
            self.sync.note_asked(&peer);
        }
        // Access is checked when a peer first touches the document; once in the sync set it
        // stays allowed until it leaves.
        if (asks || matches!(message, Message::Ephemeral(_))) && !known {
            self.ask(
                peer.clone(),
                ShareQuestion::Access,
                AfterAnswer::Incoming {
                    peer,
                    message,
                    known,
                    granted,
                },
            );
            return;
        }
        self.incoming_allowed(peer, message, known, doc);
    }

    fn incoming_allowed(
        &mut self,
        peer: PeerId,
        message: Message,
        known: bool,
        doc: &mut Automerge,
    ) {
        match message {
            // Another node that lacks the document asks for it. We lack it too, having looked
            // in the storage we share: nothing we could send is coming, so we say so at once
            // rather than wait with it for the find timeout. (Should the document reach us
            // from elsewhere, it goes to that node with the next change.)
            Message::Request(_)
                if self.cluster_nodes.contains(&peer)
                    && matches!(
                        self.sync.state(),
                        HandleState::Requesting | HandleState::Unavailable
                    ) =>
            {
                self.unavailable_to(peer);
            }
            Message::Sync(_) | Message::Request(_) => match self.stored_state_of(&peer) {
                Some(storage_id) => self.read_sync_state(
                    storage_id,
                    AfterSyncState::Receive {
                        peer,
                        message,
                        known,
                    },
                ),
                None => self.receive(peer, message, None, known, doc),
            },
            Message::DocUnavailable(_)
                if self.cluster_nodes.contains(&peer)
                    && self.sync.state() == HandleState::Ready =>
            {
                // That node does not hold the document: stop sending it changes until it loads
                // the document again (it then syncs with us afresh).
                debug!(%peer, "another node does not hold the document; not syncing with it");
                self.acks.connection_ended(&peer);
                let out = self.sync.remove_peer(&peer);
                self.apply(out, None, doc);
            }
            Message::DocUnavailable(_) => {
                let out = self.sync.receive_doc_unavailable(&peer);
                self.apply(out, None, doc);
            }
            Message::Ephemeral(m) => self.ephemeral_received(&peer, m),
            other => debug!(kind = other.type_name(), "not a document message; ignored"),
        }
    }

    fn receive(
        &mut self,
        peer: PeerId,
        message: Message,
        stored: Option<SyncState>,
        known: bool,
        doc: &mut Automerge,
    ) {
        let request = matches!(message, Message::Request(_));
        let (Message::Sync(m) | Message::Request(m)) = message else {
            return;
        };
        let Some(metadata) = self.peers.get(&peer).cloned() else {
            return;
        };
        // Local changes not yet announced go out first, so each change event names its origin.
        self.catch_up_local(doc);
        // Patches for listeners are logged while the change is applied: a diff afterwards would
        // walk the whole document for every change.
        let mut patch_log = PatchLog::new(self.listening);
        let result = self.sync.receive_sync_logging(
            doc,
            &peer,
            &metadata,
            stored,
            m.data.as_bytes(),
            request,
            // Another node relays what it took within the same limits.
            if self.cluster_nodes.contains(&peer) {
                crate::untrusted::Quota::default()
            } else {
                self.config.quota
            },
            &mut patch_log,
        );
        match result {
            Ok(mut out) => {
                let refused = out.refused.take();
                if self.listening && out.document_changed {
                    self.logged_patches = Some((doc.get_heads(), doc.make_patches(&mut patch_log)));
                }
                self.apply(out, Some(&peer), doc);
                if let Some(over) = refused {
                    self.refused(&peer, over, doc);
                }
            }
            Err(error) => {
                // A peer that sends what automerge cannot take is broken or hostile: it loses
                // its connection (and may come back); nobody else notices.
                warn!(%peer, %error, "bad sync message; disconnecting the peer");
                self.effects.push(DocumentEffect::Disconnect(peer.clone()));
            }
        }
        self.opened_by(&peer, known);
    }

    /// `peer`'s changes crossed the quota and were refused. From then on, for the rest of its
    /// connection, the peer is synced read-only: automerge's sync protocol has no way to refuse
    /// some changes, and a peer told nothing would offer them again and again. Logged once per
    /// peer; a peer that keeps sending them (each reconnection sends them again) is cut off.
    fn refused(&mut self, peer: &PeerId, over: OverQuota, doc: &mut Automerge) {
        let count = match self.refusals.iter_mut().find(|(p, _)| p == peer) {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                warn!(%peer, %over, "changes refused: over the quota");
                self.refusals.push((peer.clone(), 1));
                1
            }
        };
        self.effects.push(DocumentEffect::Refused {
            peer: peer.clone(),
            over,
        });
        // Read-only also for what it still has queued here, should it be cut off below.
        let out = self.sync.set_read_only(doc, peer, true);
        self.apply(out, None, doc);
        if count >= MAX_REFUSALS {
            warn!(%peer, refusals = count, "changes refused again and again; disconnecting the peer");
            self.effects.push(DocumentEffect::Disconnect(peer.clone()));
        }
    }

    /// An ephemeral message: for the application, and forwarded to the document's other peers,
    /// keeping sender, session and count. Neither the original sender nor the hop it came from
    /// gets it back (JS echoes to the hop).
    fn ephemeral_received(&mut self, hop: &PeerId, message: EphemeralMessage) {
        // JS receivers drop values that are not CBOR; so do we, before anyone sees them.
        if ciborium::from_reader::<ciborium::Value, _>(message.data.as_bytes()).is_err() {
            warn!(peer = %hop, "ephemeral data is not CBOR; dropped");
            return;
        }
        self.effects.push(DocumentEffect::Ephemeral {
            sender: message.sender_id.clone(),
            session_id: message.session_id.clone(),
            count: message.count,
            data: message.data.as_bytes().to_vec(),
        });
        for peer in self.sync.peers() {
            if peer == &message.sender_id || peer == hop || !self.peers.contains_key(peer) {
                continue;
            }
            let mut forward = message.clone();
            forward.target_id = peer.clone();
            self.effects
                .push(DocumentEffect::Send(Message::Ephemeral(forward)));
        }
    }

    fn broadcast(&mut self, data: MessageData, count: u64) {
        for peer in self.sync.peers() {
            if !self.peers.contains_key(peer) {
                continue;
            }
            self.effects
                .push(DocumentEffect::Send(Message::Ephemeral(EphemeralMessage {
                    sender_id: self.config.local_peer.clone(),
                    target_id: peer.clone(),
                    document_id: self.document_id.clone(),
                    data: data.clone(),
                    count,
                    session_id: self.config.session_id.clone(),
                })));
        }
    }

    /// A local change happened (or several): tell the peers.
    fn local_change(&mut self, doc: &mut Automerge) {
        let logged = self.local_patches.take();
        if doc.get_heads() == self.last_heads {
            return;
        }
        if let Some(logged) = logged.filter(|l| l.from == self.last_heads) {
            self.logged_patches = Some((logged.to, logged.patches));
        }
        let out = self.sync.document_changed(doc);
        self.apply(out, None, doc);
        self.after_change(None, doc);
    }

    fn catch_up_local(&mut self, doc: &mut Automerge) {
        if doc.get_heads() != self.last_heads {
            self.local_change(doc);
        }
    }

    fn apply(&mut self, out: SyncOutput, origin: Option<&PeerId>, doc: &mut Automerge) {
        // A peer's changes are acknowledged only once saved: until then every message to that
        // peer waits (in order) for the save. Other peers hear of the changes at once; should
        // the save never happen, the sender still has them and sends them again. Another node
        // acknowledged the changes it relays itself, to its own clients, once it saved them.
        let writer = origin.filter(|peer| !self.cluster_nodes.contains(peer));
        if self.config.durable_acknowledgement && self.config.storage && out.document_changed {
            if let Some(origin) = writer {
                self.acks.changed_by(origin);
                self.unacknowledged_since
                    .entry(self.acks.next_save())
                    .or_insert(self.now);
                self.save_at = Some(self.now);
            }
        }
        let now = self.acks.route(out.messages);
        self.send_all(now);
        // One answer larger than the byte bound may wait on its own (a large document).
        if self.acks.held_len() > self.config.max_held
            || (self.acks.held_len() > 1 && self.acks.held_bytes() > self.config.max_held_bytes)
        {
            self.cut_off_waiting_writers();
        }
        if !out.sync_states.is_empty() {
            self.dirty_sync_states.extend(out.sync_states);
            self.schedule_save();
        }
        for (storage_id, heads) in out.remote_heads {
            self.effects
                .push(DocumentEffect::RemoteHeads { storage_id, heads });
        }
        // The change event goes out before the state: whoever waited for `Ready` and then
        // subscribes must not see the change that made the document ready.
        if out.document_changed {
            self.after_change(origin.cloned(), doc);
        }
        if let Some(state) = out.state_change {
            self.publish(state);
        }
    }

    fn send_all(&mut self, messages: Vec<Message>) {
        for message in messages {
            let connected = message
                .target_id()
                .is_some_and(|target| self.peers.contains_key(target));
            if connected {
                self.effects.push(DocumentEffect::Send(message));
            } else {
                debug!(kind = message.type_name(), "peer gone; message dropped");
            }
        }
    }

    fn publish(&mut self, state: HandleState) {
        self.find_deadline = match state {
            HandleState::Requesting => Some(self.now + self.config.find_timeout),
            _ => None,
        };
        self.effects.push(DocumentEffect::State(state));
        // Asked for by peers only, and nobody has it: once they are answered it leaves memory
        // at once (as an idle document does), so a peer asking for made-up ids leaves nothing
        // behind. A document the application looks for stays, to turn ready should it arrive.
        if state == HandleState::Unavailable && !self.wanted_locally {
            self.effects.push(DocumentEffect::Idle { available: false });
        }
    }

    fn after_change(&mut self, origin: Option<PeerId>, doc: &Automerge) {
        let logged = self.logged_patches.take();
        let heads = doc.get_heads();
        if heads == self.last_heads {
            return;
        }
        // Patches logged as the change was applied lead from the last heads (local changes were
        // announced first) to the heads logged with them; if the application changed the
        // document since, or nothing was logged, the driver diffs, if anyone listens.
        let patches = match logged {
            Some((logged_heads, patches)) if logged_heads == heads => Some(patches),
            _ => None,
        };
        let before = std::mem::replace(&mut self.last_heads, heads.clone());
        self.effects.push(DocumentEffect::Changed(Changed {
            origin,
            before,
            after: heads,
            patches,
        }));
        self.schedule_save();
    }

    // ---- saving ----

    fn schedule_save(&mut self) {
        if self.config.storage && self.save_at.is_none() {
            self.save_at = Some(self.now + self.config.save_debounce);
        }
    }

    /// Saves what is unsaved as soon as it can: now, or right after the save in flight. The
    /// number of the save that will hold everything so far.
    fn save_now(&mut self, doc: &mut Automerge) -> u64 {
        if self.saving.is_some() {
            self.save_at = Some(self.now);
            return self.acks.next_save();
        }
        self.start_save(doc)
    }

    /// Plans the next save and hands it to the driver; its number.
    fn start_save(&mut self, doc: &mut Automerge) -> u64 {
        self.save_at = None;
        let number = self.acks.save_started();
        // Without storage there is nothing to plan (a plan can mean serialising the document).
        if !self.config.storage {
            self.landed(number, Ok(()));
            return number;
        }
        let busy = self
            .last_save_at
            .is_some_and(|last| self.now.duration_since(last) < self.config.save_debounce);
        self.last_save_at = Some(self.now);
        // A peer waits for its acknowledgement on a document written to without pause: the
        // cheapest durable write now, the compaction (a whole-document save, and a load to check
        // it) once saves go quiet. A lone change is saved as the rule says: quick, it would cost
        // a second write for the compaction.
        let plan = if busy && self.acks.anyone_waiting() {
            self.ledger.plan_quick_save(doc)
        } else {
            self.ledger.plan_save(doc)
        };
        let sync_states = std::mem::take(&mut self.dirty_sync_states);
        if plan.is_none() && sync_states.is_empty() {
            // Nothing new to write: whatever waited is already durable.
            self.landed(number, Ok(()));
            self.compact_when_quiet(doc);
            return number;
        }
        self.saving = Some(SaveId(number));
        self.effects.push(DocumentEffect::Save {
            save: SaveId(number),
            job: SaveJob { plan, sync_states },
        });
        number
    }

    fn save_finished(&mut self, save: SaveId, outcome: SaveOutcome, doc: &mut Automerge) {
        if self.saving != Some(save) {
            debug!(?save, "the outcome of a save not in flight; ignored");
            return;
        }
        self.saving = None;
        if let Some(plan) = &outcome.saved_plan {
            self.ledger.record_saved(plan);
        }
        for (storage_id, bytes) in outcome.unsaved_sync_states {
            // A state that moved again since is newer than the one that failed.
            self.dirty_sync_states.entry(storage_id).or_insert(bytes);
        }
        if let Some(why) = &outcome.snapshot_refused {
            warn!(
                document_id = %self.document_id,
                why, "not compacting: the changes are saved as an incremental, every chunk stays"
            );
            self.ledger.refuse_snapshots();
            // Nothing was written: save again at once, as an incremental.
            self.save_at = Some(self.now);
        } else {
            if outcome.chunk_stored {
                self.release_saved(save.0);
                if self.ledger.compaction_pending() {
                    self.schedule_save();
                }
                self.uncompacted |= outcome.saved_plan.is_some();
                if outcome.result.is_ok() {
                    self.compact_when_quiet(doc);
                }
            }
            if let Err(error) = &outcome.result {
                // The driver reports the store's failures once for every document.
                debug!(%error, retry_after = ?outcome.retry_after, "save failed; will retry");
                self.save_at = Some(self.now + outcome.retry_after);
            }
            self.settle(save.0, outcome.result);
        }
        match self.take_waiting() {
            Some(Waiting::SaveInFlight { command }) => self.delete(command, doc),
            other => self.waiting = other.map(Box::new),
        }
    }

    /// Compacts the document ([`Self::compact`]) if changes were saved since it last was and
    /// nothing is left to save (the peers' sync states often follow the changes in a save of
    /// their own).
    fn compact_when_quiet(&mut self, doc: &mut Automerge) {
        let quiet = self.uncompacted
            && self.saving.is_none()
            && self.save_at.is_none()
            && self.ledger.saved_heads() == doc.get_heads().as_slice();
        if quiet {
            self.compact(doc);
        }
    }

    /// Replaces a small document with a copy of itself. automerge leaves room to grow in every
    /// column it loads or changes (about 8 KiB of a small document's 15 KiB), and a copy
    /// allocates only what is used. Done once the document is loaded, and when a save leaves
    /// nothing to save after changes were saved; the next change grows only the columns it
    /// touches. The bound is on the stored (compressed) size, which keeps the copy, made on the
    /// runtime's thread, to tens of microseconds; larger documents keep their room, which is the
    /// same few KiB whatever their size.
    fn compact(&mut self, doc: &mut Automerge) {
        self.uncompacted = false;
        if self.ledger.stored_bytes() <= COMPACT_AT_MOST {
            *doc = doc.clone();
        }
    }

    /// Save `number` had nothing to write, or wrote it all.
    fn landed(&mut self, number: u64, result: Result<(), StorageError>) {
        self.release_saved(number);
        self.settle(number, result);
    }

    /// Save `number` ended (landed or failed): what waited for it, or an earlier one, hears.
    fn settle(&mut self, number: u64, result: Result<(), StorageError>) {
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(_, waits_for)| *waits_for <= number);
        self.flushes = keep;
        for (command, _) in done {
            self.complete(command, copy_result(&result));
        }
        if let Some(&Waiting::FinalSave {
            command,
            number: waits_for,
        }) = self.waiting.as_deref()
        {
            if waits_for <= number {
                self.waiting = None;
                self.finish_stop(command, result);
            }
        }
    }

    /// Save `number` landed: the messages that waited for it go.
    fn release_saved(&mut self, number: u64) {
        let go = self.acks.save_landed(number);
        self.send_all(go);
        let through = self.acks.durable_through();
        let oldest = self
            .unacknowledged_since
            .range(..=through)
            .map(|(_, since)| *since)
            .min();
        self.unacknowledged_since.retain(|save, _| *save > through);
        if self.unacknowledged_since.is_empty() {
            // An emptied map keeps its first node: free it, as most documents wait for nothing.
            self.unacknowledged_since = BTreeMap::new();
        }
        if let Some(since) = oldest {
            self.effects.push(DocumentEffect::Acknowledged {
                waited: self.now.saturating_duration_since(since),
            });
        }
    }

    /// Disconnects every peer with changes or messages waiting for a save, and drops those
    /// messages (they were built for connections that end here). The peers still hold the
    /// changes that were not acknowledged, and send them again on their next connection.
    fn cut_off_waiting_writers(&mut self) {
        for peer in self.acks.drop_waiting() {
            warn!(
                %peer,
                max_held = self.config.max_held,
                max_held_bytes = self.config.max_held_bytes,
                "messages to this peer pile up behind the document's saves (failing or too slow); disconnecting it"
            );
            if self.peers.contains_key(&peer) {
                self.effects.push(DocumentEffect::Disconnect(peer));
            }
        }
    }

    // ---- timers ----

    fn timeout(&mut self, doc: &mut Automerge) {
        let now = self.now;
        if self.saving.is_none() && self.save_at.is_some_and(|at| at <= now) {
            self.start_save(doc);
        }
        if self.find_deadline.is_some_and(|at| at <= now) {
            self.find_deadline = None;
            let out = self.sync.find_timed_out();
            self.apply(out, None, doc);
        }
        if let Some(idle) = self.config.idle_timeout {
            if self.last_activity + idle <= now {
                self.last_activity = now;
                // Peers' changes not yet saved keep the document here until they are.
                if self.sync.state().is_settled() && !self.acks.anyone_waiting() {
                    let available = self.sync.state() == HandleState::Ready;
                    self.effects.push(DocumentEffect::Idle { available });
                }
            }
        }
    }

    // ---- ending ----

    fn complete(&mut self, command: CommandId, result: Result<(), StorageError>) {
        self.effects
            .push(DocumentEffect::Completed { command, result });
    }

    fn finish_stop(&mut self, command: CommandId, result: Result<(), StorageError>) {
        if let Err(error) = &result {
            warn!(%error, "final save failed");
            // Peers whose changes were not saved hear nothing more from this document; cut off,
            // they reconnect and send those changes again.
            self.cut_off_waiting_writers();
        }
        self.publish(HandleState::Unloaded);
        self.complete(command, Ok(()));
        self.end();
    }

    fn delete(&mut self, command: CommandId, doc: &mut Automerge) {
        self.save_at = None;
        self.dirty_sync_states.clear();
        self.sync.set_state(HandleState::Deleted);
        *doc = Automerge::new();
        self.publish(HandleState::Deleted);
        if self.config.storage {
            self.effects.push(DocumentEffect::RemoveDocument {
                tombstone: self.config.tombstones,
            });
            self.wait(Waiting::Removal { command });
        } else {
            self.complete(command, Ok(()));
            self.end();
        }
    }

    fn end(&mut self) {
        self.ended = true;
        self.find_deadline = None;
        self.effects.push(DocumentEffect::Stopped);
    }
}

/// The same outcome for another waiter (storage errors are not `Clone`).
fn copy_result(result: &Result<(), StorageError>) -> Result<(), StorageError> {
    match result {
        Ok(()) => Ok(()),
        Err(StorageError::Closed) => Err(StorageError::Closed),
        Err(StorageError::InvalidKey { key, reason }) => Err(StorageError::InvalidKey {
            key: key.clone(),
            reason: reason.clone(),
        }),
        Err(StorageError::Io { key, source }) => Err(StorageError::Io {
            key: key.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        }),
    }
}
