//! One simulated repo: each document it holds is a real [`DocumentActor`], fed and obeyed the way
//! tandem-repo's hub and document tasks feed and obey it, over a [`SimStore`], on a virtual clock.
//! The simulation decides nothing about sharing, relaying or saving: it performs the actors'
//! effects, with faults.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ReadDoc, ROOT};
use tandem_core::document::{
    CommandId, DocumentActor, DocumentConfig, DocumentEffect, DocumentInput, PeerInfo, SaveId,
    SaveJob, SaveOutcome, ShareQuestion, Start,
};
use tandem_core::persistence::{load_document, take_in_stored};
use tandem_core::sync::{EphemeralDedup, HandleState};
use tandem_core::{
    ChunkKey, ChunkKind, DocumentId, EphemeralMessage, Message, MessageData, PeerId, PeerMetadata,
    SessionId, StorageKey,
};

use crate::rng::SimRng;
use crate::store::SimStore;

/// One tick of the world's clock.
pub const TICK: Duration = Duration::from_millis(10);

/// A document a peer holds in memory.
#[derive(Debug)]
pub struct SimDoc {
    /// The document.
    pub doc: Automerge,
    /// Its actor.
    pub actor: DocumentActor,
    /// Found through the peer's own API (the hub's wanted set): every connected peer is told of
    /// it, whatever the policy offers them.
    pub wanted: bool,
    /// The save written but not yet durable, with the change hashes it makes durable.
    saving: Option<(SaveId, SaveJob, Vec<ChangeHash>)>,
}

/// A connected peer as this peer sees it.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    /// What it said about itself.
    pub metadata: PeerMetadata,
    /// Whether the share policy offered it documents when the connection opened (or at the last
    /// `share_policy_changed`).
    pub announce: bool,
}

/// Something a peer did that breaks an invariant on its own (not a convergence question).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerViolation {
    /// A peer was disconnected for what it sent (a sync message from an honest peer refused).
    SyncRefused(String),
    /// An ephemeral message reached the application twice, or came back to its sender.
    EphemeralEcho(String),
    /// An evicted document's last save never ended.
    StuckStopping(String),
}

/// One simulated repo.
#[derive(Debug)]
pub struct SimPeer {
    /// Its index in the world.
    pub index: usize,
    /// Its peer id.
    pub id: PeerId,
    /// Seed of this lifetime's actor ids: every document opened gets its own actor, as
    /// automerge gives each `load` and `new` a random one. (One actor per peer made a document
    /// deleted and found again reuse sequence numbers; automerge refuses such changes.)
    actor_seed: [u8; 16],
    actors_made: u64,
    config: Arc<DocumentConfig>,
    ephemeral_count: u64,
    /// Its storage (maybe shared with another peer).
    pub store: Rc<RefCell<SimStore>>,
    /// Documents in memory.
    pub docs: BTreeMap<DocumentId, SimDoc>,
    /// Documents stopping (evicted), until their last save is durable.
    unloading: BTreeMap<DocumentId, SimDoc>,
    /// Connected peers.
    pub links: BTreeMap<PeerId, LinkInfo>,
    /// The share policy as the application sets it now: whether to announce to a peer.
    policy: BTreeMap<PeerId, bool>,
    dedup: EphemeralDedup,
    /// Ephemeral values delivered to the application: (sender, session, count).
    delivered: BTreeSet<(PeerId, SessionId, u64)>,
    /// Documents whose save started since the world last asked.
    started_saves: Vec<DocumentId>,
    base: Instant,
    now: Instant,
    commands: u64,
    /// Chunks the loader found corrupt (torn by a crash) and skipped.
    pub corrupt_chunks_skipped: usize,
    /// Invariants broken along the way.
    pub violations: Vec<PeerViolation>,
}

impl SimPeer {
    /// A fresh peer on `store`; its clock starts at `base`.
    pub fn new(
        index: usize,
        store: Rc<RefCell<SimStore>>,
        rng: &mut SimRng,
        base: Instant,
    ) -> Self {
        let id = PeerId::from(format!("peer-{index}"));
        SimPeer {
            index,
            config: Self::config(&id, rng),
            id,
            actor_seed: rng.bytes16(),
            actors_made: 0,
            ephemeral_count: 0,
            store,
            docs: BTreeMap::new(),
            unloading: BTreeMap::new(),
            links: BTreeMap::new(),
            policy: BTreeMap::new(),
            dedup: EphemeralDedup::default(),
            delivered: BTreeSet::new(),
            started_saves: Vec::new(),
            base,
            now: base,
            commands: 0,
            corrupt_chunks_skipped: 0,
            violations: Vec::new(),
        }
    }

    /// The repo's defaults, with storage, and a session of this lifetime.
    fn config(id: &PeerId, rng: &mut SimRng) -> Arc<DocumentConfig> {
        let session = SessionId::from_random(u128::from_le_bytes(rng.bytes16()));
        Arc::new(DocumentConfig {
            storage: true,
            ..DocumentConfig::new(id.clone(), session)
        })
    }

    /// The world's clock moved to `tick`.
    pub fn set_time(&mut self, tick: u64) {
        self.now = self.base + TICK * tick as u32;
    }

    /// A fresh actor id for a document being opened.
    fn next_actor(&mut self) -> ActorId {
        self.actors_made += 1;
        let mut bytes = self.actor_seed;
        for (byte, count) in bytes.iter_mut().zip(self.actors_made.to_le_bytes()) {
            *byte ^= count;
        }
        ActorId::from(bytes.to_vec())
    }

    fn command(&mut self) -> CommandId {
        self.commands += 1;
        CommandId(self.commands)
    }

    /// What the peer says about itself when it connects.
    pub fn metadata(&self) -> PeerMetadata {
        PeerMetadata {
            storage_id: Some(self.store.borrow().id.clone()),
            is_ephemeral: false,
        }
    }

    /// The application's share policy now announces to `peer`, or not.
    pub fn set_policy(&mut self, peer: PeerId, announce: bool) {
        self.policy.insert(peer, announce);
    }

    /// The policy back to announcing to everyone.
    pub fn reset_policy(&mut self) {
        self.policy.clear();
    }

    fn announces(&self, peer: &PeerId) -> bool {
        self.policy.get(peer).copied().unwrap_or(true)
    }

    /// Documents whose save started since the last call.
    pub fn take_started_saves(&mut self) -> Vec<DocumentId> {
        std::mem::take(&mut self.started_saves)
    }

    /// The process dies: memory is gone, the store keeps what was durable (and whatever the
    /// crash did to the rest). A new actor and session, as a new process would have.
    pub fn restart(&mut self, rng: &mut SimRng) -> Vec<crate::store::CrashDamage> {
        let damage = self.store.borrow_mut().crash(self.index, rng);
        self.docs.clear();
        self.unloading.clear();
        self.links.clear();
        self.started_saves.clear();
        self.dedup = EphemeralDedup::default();
        self.delivered.clear();
        self.actor_seed = rng.bytes16();
        self.config = Self::config(&self.id, rng);
        self.ephemeral_count = 0;
        damage
    }

    fn info(&self, peer: &PeerId) -> Option<PeerInfo> {
        let link = self.links.get(peer)?;
        Some(PeerInfo {
            peer: peer.clone(),
            metadata: link.metadata.clone(),
            announce_any: link.announce,
        })
    }

    // ---- the hub's part ----

    /// A connection to `peer` opened: documents hear of it if the policy offers it anything, and
    /// wanted documents hear of it anyway (tandem-repo's hub).
    pub fn connect(&mut self, peer: PeerId, metadata: PeerMetadata) -> Vec<Message> {
        let announce = self.announces(&peer);
        self.links
            .insert(peer.clone(), LinkInfo { metadata, announce });
        let Some(info) = self.info(&peer) else {
            return Vec::new();
        };
        let ids: Vec<DocumentId> = self
            .docs
            .iter()
            .filter(|(_, doc)| announce || doc.wanted)
            .map(|(id, _)| id.clone())
            .collect();
        let mut messages = Vec::new();
        for id in ids {
            messages.extend(self.feed(&id, DocumentInput::PeerConnected(info.clone())));
        }
        messages
    }

    /// `repo.share_policy_changed()`: each connected peer is asked about again, and every
    /// document decides again with what the policy now says.
    pub fn share_policy_changed(&mut self) -> Vec<Message> {
        let peers: Vec<PeerId> = self.links.keys().cloned().collect();
        for peer in &peers {
            let announce = self.announces(peer);
            if let Some(link) = self.links.get_mut(peer) {
                link.announce = announce;
            }
        }
        let infos: Vec<PeerInfo> = peers.iter().filter_map(|p| self.info(p)).collect();
        let ids: Vec<DocumentId> = self.docs.keys().cloned().collect();
        let mut messages = Vec::new();
        for id in ids {
            let command = self.command();
            messages.extend(self.feed(
                &id,
                DocumentInput::SharePolicyChanged {
                    peers: infos.clone(),
                    command,
                },
            ));
        }
        messages
    }

    /// The connection to `peer` closed.
    pub fn disconnect(&mut self, peer: &PeerId) -> Vec<Message> {
        if self.links.remove(peer).is_none() {
            return Vec::new();
        }
        let ids: Vec<DocumentId> = self
            .docs
            .iter()
            .filter(|(_, doc)| doc.actor.knows_peer(peer))
            .map(|(id, _)| id.clone())
            .collect();
        let mut messages = Vec::new();
        for id in ids {
            messages.extend(self.feed(&id, DocumentInput::PeerDisconnected(peer.clone())));
        }
        messages
    }

    /// A message arrived from `from`.
    pub fn receive(&mut self, from: &PeerId, message: Message) -> Vec<Message> {
        let Some(link) = self.links.get(from).cloned() else {
            return Vec::new(); // the connection it came on is gone
        };
        if let Message::Ephemeral(m) = &message {
            if !self.ephemeral_arrives(from, m) {
                return Vec::new();
            }
        }
        let Some(id) = message.document_id().cloned() else {
            return Vec::new();
        };
        let input = DocumentInput::Incoming {
            from: from.clone(),
            metadata: link.metadata,
            message,
        };
        if self.docs.contains_key(&id) {
            return self.feed(&id, input);
        }
        if matches!(
            input,
            DocumentInput::Incoming {
                message: Message::DocUnavailable(_),
                ..
            }
        ) {
            return Vec::new(); // about a document we are not looking for
        }
        self.open(&id, false, Some(input))
    }

    /// The hub's checks on an ephemeral message, and the application's: whether it goes on to
    /// the document.
    fn ephemeral_arrives(&mut self, hop: &PeerId, m: &EphemeralMessage) -> bool {
        if m.sender_id == self.id {
            self.violations.push(PeerViolation::EphemeralEcho(format!(
                "{} got its own message {} back from {hop}",
                self.id, m.count
            )));
            return false;
        }
        if !self.dedup.accept(&m.sender_id, &m.session_id, m.count) {
            return false;
        }
        let key = (m.sender_id.clone(), m.session_id.clone(), m.count);
        if !self.delivered.insert(key) {
            self.violations.push(PeerViolation::EphemeralEcho(format!(
                "{} delivered {}:{} twice",
                self.id, m.sender_id, m.count
            )));
        }
        true
    }

    /// Brings a document into memory from storage, with the peers it may talk to at once; `first`
    /// is what made it come (it goes in before the load's answer, as a repo's task feeds what
    /// arrived while it loaded).
    fn open(
        &mut self,
        id: &DocumentId,
        wanted: bool,
        first: Option<DocumentInput>,
    ) -> Vec<Message> {
        // A new task for the document waits for the last one's save.
        let mut messages = self.finish_unloading(id);
        let peers: Vec<PeerInfo> = self
            .links
            .keys()
            .filter_map(|peer| self.info(peer))
            .filter(|info| wanted || info.announce_any)
            .collect();
        let mut doc = Automerge::new().with_actor(self.next_actor());
        let actor = DocumentActor::new(
            self.config.clone(),
            id.clone(),
            Start::Load {
                wanted_locally: wanted,
            },
            peers,
            &doc,
            self.now,
        );
        let mut sim_doc = SimDoc {
            doc: Automerge::new(),
            actor,
            wanted,
            saving: None,
        };
        let effects = sim_doc.actor.start(self.now, &mut doc);
        sim_doc.doc = doc;
        self.docs.insert(id.clone(), sim_doc);
        let mut inputs: VecDeque<DocumentInput> = first.into_iter().collect();
        for effect in effects {
            self.perform(id, effect, &mut inputs, &mut messages);
        }
        self.run(id, inputs, &mut messages);
        messages
    }

    // ---- the application's part ----

    /// `repo.find(id)`.
    pub fn find(&mut self, id: &DocumentId) -> Vec<Message> {
        let Some(doc) = self.docs.get_mut(id) else {
            return self.open(id, true, None);
        };
        let mut messages = Vec::new();
        if !doc.wanted {
            doc.wanted = true;
            messages.extend(self.feed(id, DocumentInput::WantedLocally));
            let infos: Vec<PeerInfo> = self.links.keys().filter_map(|p| self.info(p)).collect();
            for info in infos {
                messages.extend(self.feed(id, DocumentInput::PeerConnected(info)));
            }
        }
        let command = self.command();
        messages.extend(self.feed(id, DocumentInput::RequestAgain(command)));
        messages
    }

    /// `repo.create()`: a document with one change, offered to the peers the policy allows.
    pub fn create(&mut self, id: DocumentId, now: i64) -> Vec<Message> {
        let mut doc = Automerge::new().with_actor(self.next_actor());
        let mut tx = doc.transaction();
        let seeded = tx
            .put_object(ROOT, "list", ObjType::List)
            .and_then(|_| tx.put_object(ROOT, "text", ObjType::Text))
            .and_then(|_| tx.put(ROOT, "count", automerge::ScalarValue::counter(0)));
        debug_assert!(seeded.is_ok());
        tx.commit_with(CommitOptions::default().with_time(now));
        let peers: Vec<PeerInfo> = self
            .links
            .keys()
            .filter_map(|peer| self.info(peer))
            .filter(|info| info.announce_any)
            .collect();
        let actor = DocumentActor::new(
            self.config.clone(),
            id.clone(),
            Start::Created,
            peers,
            &doc,
            self.now,
        );
        let mut sim_doc = SimDoc {
            doc,
            actor,
            wanted: false,
            saving: None,
        };
        let effects = sim_doc.actor.start(self.now, &mut sim_doc.doc);
        self.docs.insert(id.clone(), sim_doc);
        let mut messages = Vec::new();
        let mut inputs = VecDeque::new();
        for effect in effects {
            self.perform(&id, effect, &mut inputs, &mut messages);
        }
        self.run(&id, inputs, &mut messages);
        messages
    }

    /// A random edit of a ready document: a map key, a list, text or a counter.
    pub fn edit(
        &mut self,
        id: &DocumentId,
        rng: &mut SimRng,
        now: i64,
    ) -> Option<(String, Vec<Message>)> {
        let doc = self.docs.get_mut(id)?;
        if doc.actor.state() != HandleState::Ready {
            return None;
        }
        let kind = rng.below(4);
        let value = rng.below(1000) as i64;
        let mut tx = doc.doc.transaction();
        let what = match kind {
            0 => {
                let key = format!("k{}", rng.below(4));
                let done = tx.put(ROOT, key.as_str(), value);
                format!("put {key}={value} {}", ok(done))
            }
            1 => match tx.get(ROOT, "list").ok().flatten() {
                Some((_, list)) => {
                    let len = tx.length(&list);
                    if len > 0 && rng.chance(0.3) {
                        let at = rng.below(len);
                        format!("list delete {at} {}", ok(tx.delete(&list, at)))
                    } else {
                        let at = rng.below(len + 1);
                        format!("list insert {at} {}", ok(tx.insert(&list, at, value)))
                    }
                }
                None => "list missing".into(),
            },
            2 => match tx.get(ROOT, "text").ok().flatten() {
                Some((_, text)) => {
                    let len = tx.length(&text);
                    let at = rng.below(len + 1);
                    let delete = if len > at && rng.chance(0.3) { 1 } else { 0 };
                    let insert = ["a", "bc", "déf", "🙂"][rng.below(4)];
                    format!(
                        "text splice {at} -{delete} +{insert:?} {}",
                        ok(tx.splice_text(&text, at, delete as isize, insert))
                    )
                }
                None => "text missing".into(),
            },
            _ => {
                let by = rng.below(5) as i64 + 1;
                format!("count += {by} {}", ok(tx.increment(ROOT, "count", by)))
            }
        };
        tx.commit_with(CommitOptions::default().with_time(now));
        Some((what, self.feed(id, DocumentInput::LocalChange)))
    }

    /// The world's clock says the find timeout has passed: documents still looking give up.
    /// How many did.
    pub fn time_out_finds(&mut self) -> usize {
        let looking: Vec<DocumentId> = self
            .docs
            .iter()
            .filter(|(_, doc)| doc.actor.state() == HandleState::Requesting)
            .map(|(id, _)| id.clone())
            .collect();
        let _ = self.tick();
        looking
            .iter()
            .filter(|id| {
                self.docs
                    .get(*id)
                    .is_some_and(|doc| doc.actor.state() != HandleState::Requesting)
            })
            .count()
    }

    /// Timers: every document whose time has come hears so.
    pub fn tick(&mut self) -> Vec<Message> {
        let now = self.now;
        let due: Vec<DocumentId> = self
            .docs
            .iter()
            .chain(self.unloading.iter())
            .filter(|(_, doc)| doc.actor.next_timeout().is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        let mut messages = Vec::new();
        for id in due {
            messages.extend(self.feed(&id, DocumentInput::Timeout));
        }
        messages
    }

    /// Whether any document has a save scheduled or written and not yet durable.
    pub fn saves_pending(&self) -> bool {
        self.docs
            .values()
            .chain(self.unloading.values())
            .any(|doc| doc.saving.is_some() || doc.actor.save_scheduled())
    }

    /// `handle.broadcast(value)`.
    pub fn broadcast(&mut self, id: &DocumentId) -> Vec<Message> {
        if !self.docs.contains_key(id) {
            return Vec::new();
        }
        self.ephemeral_count += 1;
        let Ok(data) = MessageData::new(vec![0x18, (self.ephemeral_count % 200) as u8]) else {
            return Vec::new();
        };
        let count = self.ephemeral_count;
        self.feed(id, DocumentInput::Broadcast { data, count })
    }

    /// `repo.flush()`: every document saves what it has.
    pub fn flush(&mut self) -> Vec<Message> {
        let ids: Vec<DocumentId> = self.docs.keys().cloned().collect();
        let mut messages = Vec::new();
        for id in ids {
            let command = self.command();
            messages.extend(self.feed(&id, DocumentInput::Flush(command)));
        }
        messages
    }

    /// The fsync of `id`'s save returned: the chunk is durable, the chunks it merged go, and the
    /// actor hears that the save landed. The change hashes it made durable, and what the actor
    /// sent on hearing it.
    pub fn save_durable(&mut self, id: &DocumentId) -> Option<(Vec<ChangeHash>, Vec<Message>)> {
        let (save, job, hashes) = self.doc_mut(id)?.saving.take()?;
        {
            let mut store = self.store.borrow_mut();
            store.sync(self.index);
            if let Some(plan) = &job.plan {
                let mut obsolete = plan.obsolete.clone();
                obsolete.sort();
                for key in &obsolete {
                    store.remove(key);
                }
            }
        }
        let outcome = SaveOutcome {
            chunk_stored: true,
            saved_plan: job.plan,
            unsaved_sync_states: Default::default(),
            result: Ok(()),
            snapshot_refused: None,
        };
        Some((
            hashes,
            self.feed(id, DocumentInput::Saved { save, outcome }),
        ))
    }

    /// A document stopping: its last save lands now (the next task for it waits for that).
    fn finish_unloading(&mut self, id: &DocumentId) -> Vec<Message> {
        let mut messages = Vec::new();
        for _ in 0..8 {
            let Some(doc) = self.unloading.get(id) else {
                return messages;
            };
            if doc.saving.is_some() {
                if let Some((_, sent)) = self.save_durable(id) {
                    messages.extend(sent);
                }
            } else {
                messages.extend(self.feed(id, DocumentInput::Timeout));
            }
        }
        if self.unloading.remove(id).is_some() {
            self.violations.push(PeerViolation::StuckStopping(format!(
                "{} could not finish stopping {id}",
                self.id
            )));
        }
        messages
    }

    /// The document, in memory or stopping.
    fn doc_mut(&mut self, id: &DocumentId) -> Option<&mut SimDoc> {
        match self.docs.get_mut(id) {
            Some(doc) => Some(doc),
            None => self.unloading.get_mut(id),
        }
    }

    /// Idle eviction (the hub unloads a settled document nobody holds): it saves and leaves
    /// memory. Whether it was settled.
    pub fn evict(&mut self, id: &DocumentId) -> (bool, Vec<Message>) {
        if !self
            .docs
            .get(id)
            .is_some_and(|doc| doc.actor.state().is_settled())
        {
            return (false, Vec::new());
        }
        let command = self.command();
        let messages = self.feed(id, DocumentInput::Stop(command));
        // Still saving: it waits beside the others until its save is durable.
        if let Some(doc) = self.docs.remove(id) {
            self.unloading.insert(id.clone(), doc);
        }
        (true, messages)
    }

    /// `repo.delete(id)`: gone from memory and storage. As in tandem-repo (and automerge-repo),
    /// deleting is local: a peer that sends the document again brings it back.
    pub fn delete(&mut self, id: &DocumentId) -> Vec<Message> {
        let mut messages = self.finish_unloading(id);
        let delete = DocumentInput::Delete(self.command());
        if self.docs.contains_key(id) {
            messages.extend(self.feed(id, delete));
        } else {
            // Not in memory: a short-lived task removes it from storage.
            messages.extend(self.open(id, false, Some(delete)));
        }
        // A save in flight lands first; then the actor removes the document.
        if self.docs.get(id).is_some_and(|doc| doc.saving.is_some()) {
            if let Some((_, sent)) = self.save_durable(id) {
                messages.extend(sent);
            }
        }
        messages
    }

    /// The document's content as JSON, for comparing peers.
    pub fn content(&self, id: &DocumentId) -> Option<String> {
        let doc = self.docs.get(id)?;
        Some(render(&doc.doc))
    }

    // ---- the document task's part ----

    /// Feeds one input to `id`'s actor and performs what follows; the messages to send.
    fn feed(&mut self, id: &DocumentId, input: DocumentInput) -> Vec<Message> {
        let mut messages = Vec::new();
        self.run(id, VecDeque::from([input]), &mut messages);
        messages
    }

    /// Feeds inputs, and the answers to what their effects ask, until none is left.
    fn run(
        &mut self,
        id: &DocumentId,
        mut inputs: VecDeque<DocumentInput>,
        out: &mut Vec<Message>,
    ) {
        let now = self.now;
        while let Some(input) = inputs.pop_front() {
            let Some(doc) = self.doc_mut(id) else {
                return;
            };
            let effects = doc.actor.handle(now, input, &mut doc.doc);
            for effect in effects {
                self.perform(id, effect, &mut inputs, out);
            }
        }
        if self.doc_mut(id).is_some_and(|doc| doc.actor.is_ended()) {
            self.docs.remove(id);
            self.unloading.remove(id);
        }
    }

    /// Performs one effect as tandem-repo's document task does; answers go to `inputs`.
    fn perform(
        &mut self,
        id: &DocumentId,
        effect: DocumentEffect,
        inputs: &mut VecDeque<DocumentInput>,
        out: &mut Vec<Message>,
    ) {
        match effect {
            DocumentEffect::Send(message) => out.push(message),
            DocumentEffect::Disconnect(peer) => {
                self.violations.push(PeerViolation::SyncRefused(format!(
                    "{} disconnects {peer} over {}",
                    self.id, id
                )));
            }
            DocumentEffect::Ask {
                question,
                peer,
                ask,
            } => {
                let allowed = match ask {
                    ShareQuestion::Announce => self.announces(&peer),
                    // The simulation restricts nobody's access.
                    ShareQuestion::Access => true,
                };
                inputs.push_back(DocumentInput::Answered { question, allowed });
            }
            DocumentEffect::LoadSyncState { read, storage_id } => {
                let key = ChunkKey::sync_state(id.clone(), &storage_id).to_storage_key();
                let state = self.store.borrow().get(&key).cloned();
                inputs.push_back(DocumentInput::SyncStateLoaded { read, state });
            }
            DocumentEffect::Load => {
                let chunks = {
                    let store = self.store.borrow();
                    let mut chunks = store.range(&ChunkKind::Snapshot.prefix(id));
                    chunks.extend(store.range(&ChunkKind::Incremental.prefix(id)));
                    chunks
                };
                let loaded = load_document(id, chunks);
                self.corrupt_chunks_skipped += loaded.corrupt.len();
                if let Some(doc) = self.doc_mut(id) {
                    let loaded = take_in_stored(&mut doc.doc, loaded);
                    inputs.push_back(DocumentInput::Loaded(loaded));
                }
            }
            DocumentEffect::Save { save, job } => {
                if let Some(Err(why)) = job.plan.as_ref().map(|plan| plan.check_snapshot()) {
                    let outcome = SaveOutcome {
                        chunk_stored: false,
                        saved_plan: None,
                        unsaved_sync_states: job.sync_states,
                        result: Ok(()),
                        snapshot_refused: Some(why),
                    };
                    inputs.push_back(DocumentInput::Saved { save, outcome });
                    return;
                }
                let index = self.index;
                let store = self.store.clone();
                let Some(doc) = self.doc_mut(id) else {
                    return;
                };
                let hashes = match &job.plan {
                    Some(_) => doc.doc.get_changes(&[]).iter().map(|c| c.hash()).collect(),
                    None => Vec::new(),
                };
                {
                    let mut store = store.borrow_mut();
                    if let Some(plan) = &job.plan {
                        store.put(index, plan.key.clone(), plan.bytes.clone());
                    }
                    for (storage_id, bytes) in &job.sync_states {
                        let key = ChunkKey::sync_state(id.clone(), storage_id).to_storage_key();
                        store.put(index, key, bytes.clone());
                    }
                }
                doc.saving = Some((save, job, hashes));
                self.started_saves.push(id.clone());
            }
            DocumentEffect::RemoveDocument => {
                let mut store = self.store.borrow_mut();
                let keys: Vec<StorageKey> = store
                    .range(&StorageKey::document(id))
                    .into_iter()
                    .map(|(key, _)| key)
                    .collect();
                for key in keys {
                    store.remove(&key);
                }
            }
            DocumentEffect::State(_)
            | DocumentEffect::Changed(_)
            | DocumentEffect::RemoteHeads { .. }
            | DocumentEffect::Ephemeral { .. }
            | DocumentEffect::PeerOpened(_)
            | DocumentEffect::Idle
            | DocumentEffect::Completed { .. }
            | DocumentEffect::Stopped => {}
        }
    }
}

fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(error) => format!("refused: {error}"),
    }
}

/// A document's visible content, rendered deterministically.
pub fn render(doc: &Automerge) -> String {
    let mut out = String::new();
    for key in ["k0", "k1", "k2", "k3", "count"] {
        if let Ok(Some((value, _))) = doc.get(ROOT, key) {
            out.push_str(&format!("{key}={value};"));
        }
    }
    if let Ok(Some((_, list))) = doc.get(ROOT, "list") {
        let values: Vec<String> = doc
            .list_range(&list, ..)
            .map(|item| format!("{:?}", item.value))
            .collect();
        out.push_str(&format!("list={values:?};"));
    }
    if let Ok(Some((_, text))) = doc.get(ROOT, "text") {
        out.push_str(&format!("text={:?};", doc.text(&text).unwrap_or_default()));
    }
    out
}
