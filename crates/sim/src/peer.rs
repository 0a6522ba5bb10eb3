//! One simulated repo: its documents' sans-IO cores (`DocumentSync`, `ChunkLedger`) wired the way
//! tandem-repo's hub and workers wire them, over a [`SimStore`], with no tasks and no clock.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use automerge::sync::State as SyncState;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ReadDoc, ROOT};
use tandem_core::persistence::{load_document, ChunkLedger, SavePlan};
use tandem_core::sync::{DocumentSync, EphemeralDedup, HandleState, SyncOutput};
use tandem_core::{
    ChunkKey, ChunkKind, DocumentId, EphemeralMessage, Message, MessageData, PeerId, PeerMetadata,
    SessionId, StorageKey,
};

use crate::rng::SimRng;
use crate::store::SimStore;

/// A document a peer holds in memory.
#[derive(Debug)]
pub struct SimDoc {
    /// The document.
    pub doc: Automerge,
    /// Its synchroniser.
    pub sync: DocumentSync,
    /// What this peer knows of its chunks.
    pub ledger: ChunkLedger,
    /// Found through the peer's own API: every connected peer may be asked for it.
    pub wanted: bool,
    /// The chunk write in flight, with the change hashes it makes durable.
    pub saving: Option<(SavePlan, Vec<ChangeHash>)>,
    /// Saves so far: every other one is a quick save (`ChunkLedger::plan_quick_save`), as the
    /// repo's saves for an acknowledgement on a busy document are.
    pub saves: u64,
}

/// A connected peer as this peer sees it.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    /// What it said about itself.
    pub metadata: PeerMetadata,
    /// Whether the share policy offers it documents unasked (as it said when the connection
    /// opened, or at the last `share_policy_changed`).
    pub announce: bool,
}

/// Something a peer did that breaks an invariant on its own (not a convergence question).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerViolation {
    /// A sync message from an honest peer was refused.
    SyncRefused(String),
    /// An ephemeral message reached the application twice, or came back to its sender.
    EphemeralEcho(String),
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
    session: SessionId,
    ephemeral_count: u64,
    /// Its storage (maybe shared with another peer).
    pub store: Rc<RefCell<SimStore>>,
    /// Documents in memory.
    pub docs: BTreeMap<DocumentId, SimDoc>,
    /// Connected peers.
    pub links: BTreeMap<PeerId, LinkInfo>,
    dedup: EphemeralDedup,
    /// Ephemeral values delivered to the application: (sender, session, count).
    delivered: BTreeSet<(PeerId, SessionId, u64)>,
    /// Chunks the loader found corrupt (torn by a crash) and skipped.
    pub corrupt_chunks_skipped: usize,
    /// Invariants broken along the way.
    pub violations: Vec<PeerViolation>,
}

impl SimPeer {
    /// A fresh peer on `store`.
    pub fn new(index: usize, store: Rc<RefCell<SimStore>>, rng: &mut SimRng) -> Self {
        SimPeer {
            index,
            id: PeerId::from(format!("peer-{index}")),
            actor_seed: rng.bytes16(),
            actors_made: 0,
            session: SessionId::from_random(u128::from_le_bytes(rng.bytes16())),
            ephemeral_count: 0,
            store,
            docs: BTreeMap::new(),
            links: BTreeMap::new(),
            dedup: EphemeralDedup::default(),
            delivered: BTreeSet::new(),
            corrupt_chunks_skipped: 0,
            violations: Vec::new(),
        }
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

    /// What the peer says about itself when it connects.
    pub fn metadata(&self) -> PeerMetadata {
        PeerMetadata {
            storage_id: Some(self.store.borrow().id.clone()),
            is_ephemeral: false,
        }
    }

    /// The process dies: memory is gone, the store keeps what was durable (and whatever the
    /// crash did to the rest). A new actor and session, as a new process would have.
    pub fn restart(&mut self, rng: &mut SimRng) -> Vec<crate::store::CrashDamage> {
        let damage = self.store.borrow_mut().crash(self.index, rng);
        self.docs.clear();
        self.links.clear();
        self.dedup = EphemeralDedup::default();
        self.delivered.clear();
        self.actor_seed = rng.bytes16();
        self.session = SessionId::from_random(u128::from_le_bytes(rng.bytes16()));
        self.ephemeral_count = 0;
        damage
    }

    /// A connection to `peer` opened (the hub's `connected`: every document the policy offers
    /// it, and every document wanted here, starts syncing with it).
    pub fn connect(
        &mut self,
        peer: PeerId,
        metadata: PeerMetadata,
        announce: bool,
    ) -> Vec<Message> {
        self.links.insert(
            peer.clone(),
            LinkInfo {
                metadata: metadata.clone(),
                announce,
            },
        );
        let ids: Vec<DocumentId> = self.docs.keys().cloned().collect();
        let mut messages = Vec::new();
        for id in ids {
            if self
                .docs
                .get(&id)
                .is_some_and(|doc| should_share(doc, &peer, announce))
            {
                messages.extend(self.add_peer(&id, &peer));
            }
        }
        messages
    }

    /// `repo.share_policy_changed()`: `announce` says what the policy now offers each connected
    /// peer; every document in memory starts syncing with the peers it now shares with and stops
    /// with those it no longer does, by the repo's rule (`should_share`).
    pub fn share_policy_changed(&mut self, announce: impl Fn(&PeerId) -> bool) -> Vec<Message> {
        let peers: Vec<PeerId> = self.links.keys().cloned().collect();
        let mut messages = Vec::new();
        for peer in peers {
            let offer = announce(&peer);
            if let Some(link) = self.links.get_mut(&peer) {
                link.announce = offer;
            }
            let ids: Vec<DocumentId> = self.docs.keys().cloned().collect();
            for id in ids {
                let Some(doc) = self.docs.get_mut(&id) else {
                    continue;
                };
                let share = should_share(doc, &peer, offer);
                if share && !doc.sync.has_peer(&peer) {
                    messages.extend(self.add_peer(&id, &peer));
                } else if !share && doc.sync.has_peer(&peer) {
                    let out = doc.sync.remove_peer(&peer);
                    messages.extend(self.take_output(&id, out));
                }
            }
        }
        messages
    }

    /// The connection to `peer` closed.
    pub fn disconnect(&mut self, peer: &PeerId) -> Vec<Message> {
        if self.links.remove(peer).is_none() {
            return Vec::new();
        }
        let ids: Vec<DocumentId> = self.docs.keys().cloned().collect();
        let mut messages = Vec::new();
        for id in ids {
            if let Some(doc) = self.docs.get_mut(&id) {
                let out = doc.sync.peer_left(peer);
                messages.extend(self.take_output(&id, out));
            }
        }
        messages
    }

    fn add_peer(&mut self, id: &DocumentId, peer: &PeerId) -> Vec<Message> {
        let Some(link) = self.links.get(peer).cloned() else {
            return Vec::new();
        };
        let stored = self.sync_state_from_store(id, &link.metadata);
        let Some(doc) = self.docs.get_mut(id) else {
            return Vec::new();
        };
        let out = doc
            .sync
            .add_peer(&doc.doc, peer.clone(), &link.metadata, stored);
        self.take_output(id, out)
    }

    fn sync_state_from_store(&self, id: &DocumentId, metadata: &PeerMetadata) -> Option<SyncState> {
        let storage_id = metadata.storage_id.as_ref()?;
        let key = ChunkKey::sync_state(id.clone(), storage_id).to_storage_key();
        let bytes = self.store.borrow().get(&key).cloned()?;
        SyncState::decode(&bytes).ok()
    }

    /// Carries out a core step's effects that stay inside the peer; returns its messages.
    ///
    /// Sync states are written at once, not with the next chunk as tandem-repo writes them: a
    /// harsher world, where a crash can keep a state that is ahead of the saved document.
    fn take_output(&mut self, id: &DocumentId, out: SyncOutput) -> Vec<Message> {
        for (storage_id, bytes) in out.sync_states {
            let key = ChunkKey::sync_state(id.clone(), &storage_id).to_storage_key();
            self.store.borrow_mut().put(self.index, key, bytes);
        }
        out.messages
    }

    /// Reads a document from storage into memory, `Loading`, with the peers it may talk to.
    fn load(&mut self, id: &DocumentId, wanted: bool) {
        let (snapshots, incrementals) = {
            let store = self.store.borrow();
            (
                store.range(&ChunkKind::Snapshot.prefix(id)),
                store.range(&ChunkKind::Incremental.prefix(id)),
            )
        };
        let loaded = load_document(id, snapshots.into_iter().chain(incrementals).collect());
        self.corrupt_chunks_skipped += loaded.corrupt.len();
        let mut doc = loaded.document.unwrap_or_default();
        doc.set_actor(self.next_actor());
        self.docs.insert(
            id.clone(),
            SimDoc {
                doc,
                sync: DocumentSync::new(id.clone(), self.id.clone(), HandleState::Loading),
                ledger: loaded.ledger,
                wanted,
                saving: None,
                saves: 0,
            },
        );
        let peers: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, link)| wanted || link.announce)
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in peers {
            // Silent while loading: `finish_loading` speaks to all of them at once.
            let _ = self.add_peer(id, &peer);
        }
    }

    fn finish_loading(&mut self, id: &DocumentId) -> Vec<Message> {
        let Some(doc) = self.docs.get_mut(id) else {
            return Vec::new();
        };
        let out = doc.sync.finish_loading(&doc.doc);
        self.take_output(id, out)
    }

    /// A message arrived from `from`.
    pub fn receive(&mut self, from: &PeerId, message: Message) -> Vec<Message> {
        if !self.links.contains_key(from) {
            return Vec::new(); // the connection it came on is gone
        }
        match message {
            Message::Sync(ref m) | Message::Request(ref m) => {
                let request = matches!(message, Message::Request(_));
                let id = m.document_id.clone();
                let fresh = !self.docs.contains_key(&id);
                if fresh {
                    self.load(&id, false);
                }
                let metadata = self
                    .links
                    .get(from)
                    .map(|l| l.metadata.clone())
                    .unwrap_or_default();
                let stored = match self.docs.get(&id) {
                    Some(doc) if !doc.sync.remembers(from) => {
                        self.sync_state_from_store(&id, &metadata)
                    }
                    _ => None,
                };
                let mut messages = Vec::new();
                if let Some(doc) = self.docs.get_mut(&id) {
                    match doc.sync.receive_sync(
                        &mut doc.doc,
                        from,
                        &metadata,
                        stored,
                        m.data.as_bytes(),
                        request,
                    ) {
                        Ok(out) => messages.extend(self.take_output(&id, out)),
                        Err(error) => self.violations.push(PeerViolation::SyncRefused(format!(
                            "{} from {from}: {error}",
                            self.id
                        ))),
                    }
                }
                if fresh {
                    messages.extend(self.finish_loading(&id));
                }
                messages
            }
            Message::DocUnavailable(m) => match self.docs.get_mut(&m.document_id) {
                Some(doc) => {
                    let out = doc.sync.receive_doc_unavailable(from);
                    self.take_output(&m.document_id, out)
                }
                None => Vec::new(),
            },
            Message::Ephemeral(m) => self.ephemeral(from, m),
            _ => Vec::new(),
        }
    }

    fn ephemeral(&mut self, hop: &PeerId, m: EphemeralMessage) -> Vec<Message> {
        if m.sender_id == self.id {
            self.violations.push(PeerViolation::EphemeralEcho(format!(
                "{} got its own message {} back from {hop}",
                self.id, m.count
            )));
            return Vec::new();
        }
        if !self.dedup.accept(&m.sender_id, &m.session_id, m.count) {
            return Vec::new();
        }
        let key = (m.sender_id.clone(), m.session_id.clone(), m.count);
        if !self.delivered.insert(key) {
            self.violations.push(PeerViolation::EphemeralEcho(format!(
                "{} delivered {}:{} twice",
                self.id, m.sender_id, m.count
            )));
        }
        let Some(doc) = self.docs.get(&m.document_id) else {
            return Vec::new();
        };
        doc.sync
            .peers()
            .filter(|peer| **peer != m.sender_id && *peer != hop)
            .map(|peer| {
                let mut forward = m.clone();
                forward.target_id = peer.clone();
                Message::Ephemeral(forward)
            })
            .collect()
    }

    /// `repo.find(id)`.
    pub fn find(&mut self, id: &DocumentId) -> Vec<Message> {
        match self.docs.get_mut(id) {
            Some(doc) => {
                let mut messages = Vec::new();
                if !doc.wanted {
                    doc.wanted = true;
                    let peers: Vec<PeerId> = self
                        .links
                        .iter()
                        .filter(|(peer, link)| should_share(doc, peer, link.announce))
                        .map(|(peer, _)| peer.clone())
                        .collect();
                    for peer in peers {
                        messages.extend(self.add_peer(id, &peer));
                    }
                }
                if let Some(doc) = self.docs.get_mut(id) {
                    let out = doc.sync.request_again(&doc.doc);
                    messages.extend(self.take_output(id, out));
                }
                messages
            }
            None => {
                self.load(id, true);
                self.finish_loading(id)
            }
        }
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
        self.docs.insert(
            id.clone(),
            SimDoc {
                doc,
                sync: DocumentSync::new(id.clone(), self.id.clone(), HandleState::Ready),
                ledger: ChunkLedger::new(id.clone()),
                wanted: false,
                saving: None,
                saves: 0,
            },
        );
        let peers: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, link)| link.announce)
            .map(|(peer, _)| peer.clone())
            .collect();
        let mut messages = Vec::new();
        for peer in peers {
            messages.extend(self.add_peer(&id, &peer));
        }
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
        if doc.sync.state() != HandleState::Ready {
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
        let out = doc.sync.document_changed(&doc.doc);
        Some((what, self.take_output(id, out)))
    }

    /// The find timeout passes for every document still `Requesting`; returns how many.
    pub fn time_out_finds(&mut self) -> usize {
        let mut timed_out = 0;
        for doc in self.docs.values_mut() {
            if doc.sync.state() == HandleState::Requesting {
                let _ = doc.sync.find_timed_out();
                timed_out += 1;
            }
        }
        timed_out
    }

    /// `handle.broadcast(value)`.
    pub fn broadcast(&mut self, id: &DocumentId) -> Vec<Message> {
        let Some(doc) = self.docs.get(id) else {
            return Vec::new();
        };
        self.ephemeral_count += 1;
        let Ok(data) = MessageData::new(vec![0x18, (self.ephemeral_count % 200) as u8]) else {
            return Vec::new();
        };
        doc.sync
            .peers()
            .map(|peer| {
                Message::Ephemeral(EphemeralMessage {
                    sender_id: self.id.clone(),
                    target_id: peer.clone(),
                    document_id: id.clone(),
                    data: data.clone(),
                    count: self.ephemeral_count,
                    session_id: self.session.clone(),
                })
            })
            .collect()
    }

    /// Starts saving what changed: the chunk is written but not yet durable.
    pub fn save_start(&mut self, id: &DocumentId) -> bool {
        let Some(doc) = self.docs.get_mut(id) else {
            return false;
        };
        if doc.saving.is_some() {
            return false;
        }
        let plan = match doc.saves % 2 {
            0 => doc.ledger.plan_save(&doc.doc),
            _ => doc.ledger.plan_quick_save(&doc.doc),
        };
        let Some(plan) = plan else {
            return false;
        };
        doc.saves += 1;
        let hashes = doc.doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        self.store
            .borrow_mut()
            .put(self.index, plan.key.clone(), plan.bytes.clone());
        doc.saving = Some((plan, hashes));
        true
    }

    /// The save's fsync returned: the chunk is durable, the chunks it merged go, and its changes
    /// are acknowledged (returned).
    pub fn save_durable(&mut self, id: &DocumentId) -> Option<Vec<ChangeHash>> {
        let doc = self.docs.get_mut(id)?;
        let (plan, hashes) = doc.saving.take()?;
        let mut store = self.store.borrow_mut();
        store.sync(self.index);
        let mut obsolete = plan.obsolete.clone();
        obsolete.sort();
        for key in &obsolete {
            store.remove(key);
        }
        doc.ledger.record_saved(&plan);
        Some(hashes)
    }

    /// Whether everything in memory of `id` is durable (so it may be unloaded).
    pub fn is_saved(&self, id: &DocumentId) -> bool {
        self.docs.get(id).is_some_and(|doc| {
            doc.saving.is_none() && doc.ledger.saved_heads() == doc.doc.get_heads().as_slice()
        })
    }

    /// Idle eviction: a saved document leaves memory.
    pub fn evict(&mut self, id: &DocumentId) -> bool {
        if !self.is_saved(id) {
            return false;
        }
        self.store.borrow_mut().sync(self.index);
        self.docs.remove(id).is_some()
    }

    /// `repo.delete(id)`: gone from memory and storage. As in tandem-repo (and automerge-repo),
    /// deleting is local: a peer that sends the document again brings it back.
    pub fn delete(&mut self, id: &DocumentId) {
        self.docs.remove(id);
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

    /// The document's content as JSON, for comparing peers.
    pub fn content(&self, id: &DocumentId) -> Option<String> {
        let doc = self.docs.get(id)?;
        Some(render(&doc.doc))
    }
}

/// tandem-repo's rule (its worker's `should_share`, without `access`, which the simulation does
/// not restrict): offered if announced; synced on if the peer asked for it on this connection;
/// asked for if we look for it and lack it.
fn should_share(doc: &SimDoc, peer: &PeerId, announce: bool) -> bool {
    announce
        || doc.sync.was_asked_by(peer)
        || (doc.wanted && doc.sync.state() != HandleState::Ready)
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
