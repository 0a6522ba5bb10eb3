//! One simulated repo: a [`Node`] — the real hub and document actors, driven as tandem-repo's
//! tasks drive them — over a [`SimStore`] that a crash can tear, on the world's virtual clock.
//! The simulation decides nothing about sharing, relaying or saving: it moves what the node
//! sends, and lands its saves when their fsync returns.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ChangeHash, ObjType, ReadDoc, ROOT};
use tandem_core::document::DocumentConfig;
use tandem_core::hub::{ConnectionId, DocumentActorId};
use tandem_core::sync::HandleState;
use tandem_core::testing::{Node, NodeDocument, NodeEvent, NodeStore, Policy};
use tandem_core::{DocumentId, Message, MessageData, PeerId, PeerMetadata, SessionId, StorageKey};

use crate::rng::SimRng;
use crate::store::SimStore;

/// One tick of the world's clock.
pub const TICK: Duration = Duration::from_millis(10);

/// Something a peer did that breaks an invariant on its own (not a convergence question).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerViolation {
    /// A peer was cut off for what it sent (a sync message from an honest peer refused).
    SyncRefused(String),
    /// An ephemeral message reached the application twice, or came back to its sender.
    EphemeralEcho(String),
}

/// A peer's view of a store shared with other peers: its writes are its own until synced.
struct SharedStore {
    store: Rc<RefCell<SimStore>>,
    writer: usize,
}

impl NodeStore for SharedStore {
    fn get(&self, key: &StorageKey) -> Option<Vec<u8>> {
        self.store.borrow().get(key).cloned()
    }
    fn range(&self, prefix: &StorageKey) -> Vec<(StorageKey, Vec<u8>)> {
        self.store.borrow().range(prefix)
    }
    fn put(&mut self, key: StorageKey, bytes: Vec<u8>) {
        self.store.borrow_mut().put(self.writer, key, bytes);
    }
    fn sync(&mut self) {
        self.store.borrow_mut().sync(self.writer);
    }
    fn remove(&mut self, key: &StorageKey) {
        self.store.borrow_mut().remove(key);
    }
}

/// One simulated repo.
pub struct SimPeer {
    /// Its index in the world.
    pub index: usize,
    /// Its peer id.
    pub id: PeerId,
    node: Node,
    /// Its storage (maybe shared with another peer).
    pub store: Rc<RefCell<SimStore>>,
    /// Connected peers, and the connection to each.
    links: BTreeMap<PeerId, ConnectionId>,
    /// The share policy as the application sets it now: whether to announce to a peer.
    policy: Rc<RefCell<BTreeMap<PeerId, bool>>>,
    /// Saves the world already schedules the fsync of.
    scheduled: BTreeSet<DocumentActorId>,
    /// Ephemeral values delivered to the application: (sender, session, count).
    delivered: BTreeSet<(PeerId, SessionId, u64)>,
    ephemeral_count: u64,
    base: Instant,
    /// Chunks the loader found corrupt (torn by a crash) and skipped, in earlier lifetimes.
    pub corrupt_chunks_skipped: usize,
    /// Invariants broken along the way.
    pub violations: Vec<PeerViolation>,
}

impl std::fmt::Debug for SimPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPeer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
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
        let policy: Rc<RefCell<BTreeMap<PeerId, bool>>> = Rc::default();
        let node = Self::node(&id, index, &store, &policy, rng, base);
        SimPeer {
            index,
            id,
            node,
            store,
            links: BTreeMap::new(),
            policy,
            scheduled: BTreeSet::new(),
            delivered: BTreeSet::new(),
            ephemeral_count: 0,
            base,
            corrupt_chunks_skipped: 0,
            violations: Vec::new(),
        }
    }

    /// A node for a new lifetime: the repo's defaults, with storage, a fresh session and fresh
    /// automerge actors.
    fn node(
        id: &PeerId,
        index: usize,
        store: &Rc<RefCell<SimStore>>,
        policy: &Rc<RefCell<BTreeMap<PeerId, bool>>>,
        rng: &mut SimRng,
        now: Instant,
    ) -> Node {
        let session = SessionId::from_random(u128::from_le_bytes(rng.bytes16()));
        let config = DocumentConfig {
            storage: true,
            ..DocumentConfig::new(id.clone(), session)
        };
        let store = SharedStore {
            store: store.clone(),
            writer: index,
        };
        let mut node = Node::new(config, Box::new(store), rng.bytes16(), now);
        let announces = policy.clone();
        node.set_policy(Policy {
            announce: Box::new(move |peer, _| {
                announces.borrow().get(peer).copied().unwrap_or(true)
            }),
            access: Box::new(|_, _| tandem_core::Access::ReadWrite),
        });
        node
    }

    /// The world's clock moved to `tick`: timers due fire.
    pub fn set_time(&mut self, tick: u64) -> Vec<Message> {
        self.node.tick(self.base + TICK * tick as u32);
        self.take_messages()
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
        self.policy.borrow_mut().insert(peer, announce);
    }

    /// The policy back to announcing to everyone.
    pub fn reset_policy(&mut self) {
        self.policy.borrow_mut().clear();
    }

    /// The process dies: memory is gone, the store keeps what was durable (and whatever the
    /// crash did to the rest). A new node, with a new session and new actors.
    pub fn restart(&mut self, rng: &mut SimRng) -> Vec<crate::store::CrashDamage> {
        let damage = self.store.borrow_mut().crash(self.index, rng);
        self.corrupt_chunks_skipped += self.node.corrupt_chunks_skipped();
        let now = self.base;
        self.node = Self::node(&self.id, self.index, &self.store, &self.policy, rng, now);
        self.links.clear();
        self.scheduled.clear();
        self.delivered.clear();
        self.ephemeral_count = 0;
        damage
    }

    /// Chunks skipped as corrupt over every lifetime.
    pub fn corrupt_chunks(&self) -> usize {
        self.corrupt_chunks_skipped + self.node.corrupt_chunks_skipped()
    }

    /// What the node sent, addressed by peer; and the invariants its events break.
    fn take_messages(&mut self) -> Vec<Message> {
        for event in self.node.take_events() {
            match event {
                NodeEvent::CutOff(document_id, peer) => {
                    self.violations.push(PeerViolation::SyncRefused(format!(
                        "{} cut {peer} off over {document_id}",
                        self.id
                    )));
                }
                NodeEvent::Ephemeral {
                    sender,
                    session_id,
                    count,
                    ..
                } => {
                    if sender == self.id {
                        self.violations.push(PeerViolation::EphemeralEcho(format!(
                            "{} got its own message {count} back",
                            self.id
                        )));
                    } else if !self.delivered.insert((sender.clone(), session_id, count)) {
                        self.violations.push(PeerViolation::EphemeralEcho(format!(
                            "{} delivered {sender}:{count} twice",
                            self.id
                        )));
                    }
                }
                NodeEvent::Refused(document_id, peer) => {
                    self.violations.push(PeerViolation::SyncRefused(format!(
                        "{} refused {peer}'s changes to {document_id} without a quota",
                        self.id
                    )));
                }
                NodeEvent::State(..) | NodeEvent::Completed(..) => {}
            }
        }
        // Connections the node closed: the world sees them as messages to nobody; the link
        // stays (the simulation cuts links itself).
        self.node.take_closing();
        self.node
            .take_outgoing()
            .into_iter()
            .map(|(_, message)| message)
            .collect()
    }

    // ---- connections ----

    /// A connection to `peer` opened, with what `grant` allows it.
    pub fn connect(
        &mut self,
        peer: PeerId,
        metadata: PeerMetadata,
        grant: tandem_core::Grant,
    ) -> Vec<Message> {
        if let Some(connection) = self.node.connect(peer.clone(), metadata, grant) {
            self.links.insert(peer, connection);
        }
        self.take_messages()
    }

    /// `repo.share_policy_changed()`.
    pub fn share_policy_changed(&mut self) -> Vec<Message> {
        self.node.share_policy_changed();
        self.take_messages()
    }

    /// Its client transports start (`true`) or end (`false`) their first attempt to connect:
    /// finds made meanwhile wait for them before they give up for want of peers.
    pub fn networks_settling(&mut self, settling: bool) -> Vec<Message> {
        self.node.networks_settling(settling);
        self.take_messages()
    }

    /// The connection to `peer` closed.
    pub fn disconnect(&mut self, peer: &PeerId) -> Vec<Message> {
        if let Some(connection) = self.links.remove(peer) {
            self.node.disconnect(connection);
        }
        self.take_messages()
    }

    /// A message arrived from `from`.
    pub fn receive(&mut self, from: &PeerId, message: Message) -> Vec<Message> {
        let Some(connection) = self.links.get(from).copied() else {
            return Vec::new(); // the connection it came on is gone
        };
        self.node.receive(connection, message);
        self.take_messages()
    }

    // ---- the application ----

    /// `repo.find(id)`.
    pub fn find(&mut self, id: &DocumentId) -> Vec<Message> {
        self.node.find(id);
        self.take_messages()
    }

    /// `repo.create()`: a document with one change, offered to the peers the policy allows.
    pub fn create(&mut self, id: DocumentId, now: i64) -> Vec<Message> {
        self.node.create(id, |doc| {
            let mut tx = doc.transaction();
            let seeded = tx
                .put_object(ROOT, "list", ObjType::List)
                .and_then(|_| tx.put_object(ROOT, "text", ObjType::Text))
                .and_then(|_| tx.put(ROOT, "count", automerge::ScalarValue::counter(0)));
            debug_assert!(seeded.is_ok());
            tx.commit_with(CommitOptions::default().with_time(now));
        });
        self.take_messages()
    }

    /// A random edit of a ready document: a map key, a list, text or a counter.
    pub fn edit(
        &mut self,
        id: &DocumentId,
        rng: &mut SimRng,
        now: i64,
    ) -> Option<(String, Vec<Message>)> {
        let mut what = None;
        self.node
            .change(id, |doc| what = Some(random_edit(doc, rng, now)));
        let what = what?;
        Some((what, self.take_messages()))
    }

    /// `handle.broadcast(value)`.
    pub fn broadcast(&mut self, id: &DocumentId) -> Vec<Message> {
        self.ephemeral_count += 1;
        let Ok(data) = MessageData::new(vec![0x18, (self.ephemeral_count % 200) as u8]) else {
            return Vec::new();
        };
        self.node.broadcast(id, data);
        self.take_messages()
    }

    /// `repo.flush()`: every document saves what it has.
    pub fn flush(&mut self) -> Vec<Message> {
        self.node.flush(None);
        self.take_messages()
    }

    /// Idle eviction (the hub unloads a settled document nobody holds): it saves and leaves
    /// memory. Whether it was settled.
    pub fn evict(&mut self, id: &DocumentId) -> (bool, Vec<Message>) {
        let evicted = self.node.evict(id);
        (evicted, self.take_messages())
    }

    /// `repo.delete(id)`: gone from memory and storage. As in tandem-repo (and automerge-repo),
    /// deleting is local: a peer that sends the document again brings it back.
    pub fn delete(&mut self, id: &DocumentId) -> Vec<Message> {
        self.node.delete(id);
        self.take_messages()
    }

    /// The find timeout has passed on the world's clock (moved to `tick`): documents still
    /// looking give up. How many did.
    pub fn time_out_finds(&mut self, tick: u64) -> usize {
        let looking: Vec<DocumentId> = self
            .node
            .loaded()
            .into_iter()
            .filter(|id| self.node.state(id) == Some(HandleState::Requesting))
            .collect();
        let _ = self.set_time(tick);
        looking
            .iter()
            .filter(|id| self.node.state(id) != Some(HandleState::Requesting))
            .count()
    }

    // ---- saves ----

    /// Saves started since the last call (written, their fsync not yet returned).
    pub fn take_started_saves(&mut self) -> Vec<DocumentActorId> {
        let started: Vec<DocumentActorId> = self
            .node
            .saves_in_flight()
            .into_iter()
            .filter(|actor| !self.scheduled.contains(actor))
            .collect();
        self.scheduled.extend(started.iter().copied());
        started
    }

    /// Whether any document has a save in flight or scheduled.
    pub fn saves_pending(&self) -> bool {
        self.node.saves_pending()
    }

    /// The fsync of `actor`'s save returned: its document, the change hashes it made durable,
    /// and what the node sent on hearing it.
    pub fn save_durable(
        &mut self,
        actor: DocumentActorId,
    ) -> Option<(DocumentId, Vec<ChangeHash>, Vec<Message>)> {
        if !self.scheduled.remove(&actor) {
            return None;
        }
        let id = self.node.document_of(actor)?.clone();
        let hashes = self.node.save_holds(actor);
        self.node.land_save(actor, true);
        Some((id, hashes, self.take_messages()))
    }

    /// The save in flight for `id`, if any (so a delete can land it first).
    pub fn save_of(&self, id: &DocumentId) -> Option<DocumentActorId> {
        self.node
            .saves_in_flight()
            .into_iter()
            .find(|actor| self.node.document_of(*actor) == Some(id))
    }

    // ---- what the world checks ----

    /// Whether `id` is in memory.
    pub fn has(&self, id: &DocumentId) -> bool {
        self.node.document(id).is_some()
    }

    /// Whether any actor of `id` is alive: in memory, or stopping with its last save in flight.
    pub fn holds(&self, id: &DocumentId) -> bool {
        self.node.documents().any(|doc| &doc.document_id == id)
    }

    /// `id` in memory.
    pub fn doc(&self, id: &DocumentId) -> Option<&NodeDocument> {
        self.node.document(id)
    }

    /// Every document in memory.
    pub fn docs(&self) -> Vec<&NodeDocument> {
        self.node
            .loaded()
            .iter()
            .filter_map(|id| self.node.document(id))
            .collect()
    }

    /// The document's content as JSON, for comparing peers.
    pub fn content(&self, id: &DocumentId) -> Option<String> {
        Some(render(&self.node.document(id)?.doc))
    }
}

/// A random edit: a map key, a list, text or a counter; what it did.
fn random_edit(doc: &mut Automerge, rng: &mut SimRng, now: i64) -> String {
    let kind = rng.below(4);
    let value = rng.below(1000) as i64;
    let mut tx = doc.transaction();
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
    what
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
