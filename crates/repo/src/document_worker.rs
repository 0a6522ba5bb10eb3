//! The task that owns one document's synchronisation and persistence.
//!
//! Every document a repo holds has its own worker, so a large merge or a slow save of one
//! document never delays another. The worker drives a [`DocumentSync`] (the decisions) and
//! carries out what it returns: messages into peers' outboxes, chunks and sync states into
//! storage, states and events onto the handle.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use automerge::sync::State as SyncState;
use automerge::{Automerge, ChangeHash, Patch, PatchLog};
use futures::FutureExt;
use tandem_core::persistence::{load_document, read_document_chunks, ChunkLedger};
use tandem_core::sync::{DocumentSync, HandleState, SyncOutput};
use tandem_core::untrusted::apply_untrusted;
use tandem_core::{
    ChunkKey, DocUnavailableMessage, EphemeralMessage, Message, PeerId, RemoteHeads, StorageId,
    StorageKey,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use crate::context::{now_millis, RepoContext};
use crate::durable_acks::DurableAcks;
use crate::events::{ChangeOrigin, DocumentChange, EphemeralEvent, RemoteHeadsEvent};
use crate::handle::HandleShared;
use crate::heavy_work::heavy;
use crate::hub::HubEvent;
use crate::outbox::PeerLink;
use crate::save_task::{self, SaveJob, SaveOutcome};
use crate::RepoError;

/// What the hub and the handles tell a worker.
pub(crate) enum DocEvent {
    /// A peer connected (or the document was found here while it was connected): share with it
    /// if the policy says so. The flag is the connection's `announce(peer, None)`: whether the
    /// policy offers that peer anything.
    PeerConnected(PeerLink, bool),
    /// A peer disconnected.
    PeerDisconnected(PeerId),
    /// A document message from a peer (the hop it arrived on, which for ephemeral messages need
    /// not be the original sender). Boxed: a worker's queue allocates room for 32 events at
    /// once, and this, the largest, would make that room 4.6 KiB for every loaded document.
    Incoming(Box<(PeerLink, Message)>),
    /// `DocHandle::broadcast`: a CBOR value for the document's peers.
    Broadcast(Vec<u8>),
    /// Save now.
    Flush(oneshot::Sender<Result<(), RepoError>>),
    /// Remove the document from storage and end.
    Delete(oneshot::Sender<()>),
    /// Save and end (shutdown or eviction).
    Stop(oneshot::Sender<()>),
    /// The application looks for this document: peers may be asked for it even if the share
    /// policy does not offer them documents.
    WantedLocally,
    /// The application looks for the document again: if it is unavailable, ask the peers again.
    /// Answered once the request is out (the state is `Requesting` or settled again).
    RequestAgain(oneshot::Sender<()>),
    /// Gossip told us the heads a storage we subscribed to holds.
    GossipedHeads(StorageId, RemoteHeads),
    /// The application changed what its share policy answers (`Repo::share_policy_changed`):
    /// decide again, for every connected peer, whether to sync with it. Each peer comes with
    /// what the policy now says of it as a whole (`announce(peer, None)`).
    SharePolicyChanged {
        peers: Vec<(PeerLink, bool)>,
        done: oneshot::Sender<()>,
    },
}

/// How a worker begins.
pub(crate) enum Start {
    /// Find: read storage first. `after` is the previous worker of this document, still saving
    /// after an eviction; loading waits for it.
    Load {
        after: Option<oneshot::Receiver<()>>,
        /// Found through the repo's API rather than for a peer.
        wanted_locally: bool,
    },
    /// Created or imported here: ready at once, nothing to read.
    Created,
}

struct DocumentWorker {
    shared: Arc<HandleShared>,
    ctx: Arc<RepoContext>,
    hub: mpsc::WeakSender<HubEvent>,
    sync: DocumentSync,
    links: HashMap<PeerId, PeerLink>,
    ledger: ChunkLedger,
    last_heads: Vec<ChangeHash>,
    save_at: Option<Instant>,
    find_deadline: Option<Instant>,
    dirty_sync_states: HashMap<StorageId, Vec<u8>>,
    last_activity: Instant,
    /// When the last save started: a document saved again within the save debounce is being
    /// written to without pause, and its acknowledged saves are quick ones.
    last_save_at: Option<Instant>,
    wanted_locally: bool,
    /// Durable acknowledgement: which messages to peers wait for which save.
    acks: DurableAcks,
    /// The save running beside the worker, if any (one at a time), and its number.
    saving: Option<oneshot::Receiver<SaveOutcome>>,
    saving_number: u64,
    /// Patches of the change just applied or announced, logged while it was made, for the
    /// change event that follows, with the heads they lead to.
    logged_patches: Option<(Vec<ChangeHash>, Vec<Patch>)>,
}

pub(crate) fn spawn(
    shared: Arc<HandleShared>,
    ctx: Arc<RepoContext>,
    hub: mpsc::WeakSender<HubEvent>,
    inbox: mpsc::Receiver<DocEvent>,
    start: Start,
    peers: Vec<(PeerLink, bool)>,
) {
    let state = match start {
        Start::Load { .. } => HandleState::Loading,
        Start::Created => HandleState::Ready,
    };
    let document_id = shared.document_id.clone();
    let last_heads = shared.lock().get_heads();
    let worker = DocumentWorker {
        sync: DocumentSync::new(document_id.clone(), ctx.peer_id.clone(), state),
        ledger: ChunkLedger::new(document_id.clone()),
        shared,
        ctx,
        hub,
        links: HashMap::new(),
        last_heads,
        save_at: None,
        find_deadline: None,
        dirty_sync_states: HashMap::new(),
        last_activity: Instant::now(),
        last_save_at: None,
        acks: DurableAcks::new(),
        saving: None,
        saving_number: 0,
        logged_patches: None,
        wanted_locally: matches!(
            start,
            Start::Load {
                wanted_locally: true,
                ..
            }
        ),
    };
    let span = tracing::debug_span!("document", id = %document_id);
    // Weak: the hub counts strong references to tell whether a user still holds a handle.
    let watched = Arc::downgrade(&worker.shared);
    let hub = worker.hub.clone();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let outcome = AssertUnwindSafe(worker.run(inbox, start, peers))
                .catch_unwind()
                .await;
            if let (Err(panic), Some(shared)) = (outcome, watched.upgrade()) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "(no message)".to_owned());
                worker_panicked(&shared, &hub, &message).await;
            }
        },
        span,
    ));
}

/// A worker panicked (a bug, or a storage adapter or automerge call that panicked outside the
/// guards). Its handles would otherwise look ready while nothing saves or syncs their changes,
/// and a `find` waiting on it would wait forever: the handles turn unavailable (changes fail,
/// waits end), and the hub forgets the worker, so the next `find` starts afresh from storage.
async fn worker_panicked(
    shared: &Arc<HandleShared>,
    hub: &mpsc::WeakSender<HubEvent>,
    message: &str,
) {
    error!(
        document_id = %shared.document_id,
        panic = message,
        "the document's worker panicked; its handles are unavailable, and a new find loads it afresh"
    );
    shared.state.send_replace(HandleState::Unavailable);
    if let Some(hub) = hub.upgrade() {
        let _ = hub.send(HubEvent::WorkerFailed(Arc::clone(shared))).await;
    }
}

/// Events a worker applies before a save that acknowledgements wait on, so that changes
/// arriving together are made durable together.
const QUEUE_BATCH: usize = 256;

/// At most this many messages, to all of a document's writers together, wait for its saves.
/// A message waits for one save at most (`durable_acks.rs`), so only saves that keep failing or
/// never end (a full disk, a hung one) let them pile up: the writers keep writing, and every
/// answer to them waits. Past this, the writers are cut off, as a peer that stops reading is at
/// [`MAX_QUEUED_PER_PEER`](crate::MAX_QUEUED_PER_PEER): they keep their unacknowledged changes
/// and send them again when they reconnect. (Small in unit tests, which reach it.)
const MAX_HELD: usize = if cfg!(test) {
    256
} else {
    crate::MAX_QUEUED_PER_PEER
};

/// Far enough ahead to stand for "never" in a `sleep_until`.
fn never() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365)
}

impl DocumentWorker {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<DocEvent>,
        start: Start,
        peers: Vec<(PeerLink, bool)>,
    ) {
        match start {
            Start::Load { after, .. } => {
                if let Some(previous) = after {
                    let _ = previous.await;
                }
                self.load().await;
                for (link, announce_any) in peers {
                    self.peer_connected(link, announce_any).await;
                }
                // Apply what arrived while loading, then answer everyone at once: a peer that
                // asked is answered as an asker (§5.2).
                while let Ok(event) = inbox.try_recv() {
                    if self.handle(event).await.is_break() {
                        return;
                    }
                }
                let out = {
                    let doc = self.shared.lock();
                    self.sync.finish_loading(&doc)
                };
                self.apply(out, None);
            }
            Start::Created => {
                for (link, announce_any) in peers {
                    self.peer_connected(link, announce_any).await;
                }
                self.schedule_save();
            }
        }
        loop {
            let save_at = self.save_at.unwrap_or_else(never);
            let find_deadline = self.find_deadline.unwrap_or_else(never);
            let idle_at = match self.ctx.timing.idle_timeout {
                Some(idle) => self.last_activity + idle,
                None => never(),
            };
            tokio::select! {
                event = inbox.recv() => {
                    let Some(event) = event else { break };
                    if self.handle(event).await.is_break() {
                        break;
                    }
                }
                _ = self.shared.local_change.notified() => self.local_change(),
                outcome = saving_done(&mut self.saving), if self.saving.is_some() => {
                    self.saving = None;
                    if let Err(error) = self.save_finished(outcome) {
                        warn!(%error, "save failed; will retry");
                    }
                }
                _ = tokio::time::sleep_until(save_at), if self.save_at.is_some() && self.saving.is_none() => {
                    // Acknowledgements are waiting: let changes already queued join this save.
                    if self.acks.waiting_on_next_save() {
                        for _ in 0..QUEUE_BATCH {
                            let Ok(event) = inbox.try_recv() else { break };
                            if self.handle(event).await.is_break() {
                                return;
                            }
                        }
                    }
                    // The worker goes on serving while the disk syncs.
                    self.start_save();
                }
                _ = tokio::time::sleep_until(find_deadline), if self.find_deadline.is_some() => {
                    self.find_deadline = None;
                    let out = self.sync.find_timed_out();
                    self.apply(out, None);
                }
                _ = tokio::time::sleep_until(idle_at), if self.ctx.timing.idle_timeout.is_some() => {
                    self.consider_unloading();
                }
            }
        }
    }

    async fn handle(&mut self, event: DocEvent) -> ControlFlow<()> {
        self.last_activity = Instant::now();
        if self.sync.state() == HandleState::Deleted {
            // Only the hub's bookkeeping can still arrive; nothing is done for a deleted doc.
            if let DocEvent::Stop(reply) | DocEvent::Delete(reply) = event {
                let _ = reply.send(());
                return ControlFlow::Break(());
            }
            return ControlFlow::Continue(());
        }
        match event {
            DocEvent::PeerConnected(link, announce_any) => {
                let peer = link.peer_id.clone();
                let known = self.sync.has_peer(&peer);
                self.peer_connected(link, announce_any).await;
                self.opened_by(&peer, known);
            }
            DocEvent::PeerDisconnected(peer) => {
                self.links.remove(&peer);
                // Built against the sync state that just ended: not for its next connection.
                self.acks.connection_ended(&peer);
                let out = self.sync.peer_left(&peer);
                self.apply(out, None);
            }
            DocEvent::Incoming(incoming) => {
                let (from, message) = *incoming;
                let peer = from.peer_id.clone();
                let known = self.sync.has_peer(&peer);
                self.incoming(from, message).await;
                self.opened_by(&peer, known);
            }
            DocEvent::GossipedHeads(storage_id, heads) => self.gossiped_heads(storage_id, heads),
            DocEvent::RequestAgain(reply) => {
                let out = {
                    let doc = self.shared.lock();
                    self.sync.request_again(&doc)
                };
                self.apply(out, None);
                let _ = reply.send(());
            }
            DocEvent::Broadcast(data) => self.broadcast(data),
            DocEvent::WantedLocally => self.wanted_locally = true,
            DocEvent::SharePolicyChanged { peers, done } => {
                self.share_policy_changed(peers).await;
                let _ = done.send(());
            }
            DocEvent::Flush(reply) => {
                let _ = reply.send(self.save().await);
            }
            DocEvent::Delete(reply) => {
                self.delete().await;
                let _ = reply.send(());
                return ControlFlow::Break(());
            }
            DocEvent::Stop(reply) => {
                self.catch_up_local();
                if let Err(error) = self.save().await {
                    warn!(%error, "final save failed");
                    // Peers whose changes were not saved hear nothing more from this worker;
                    // cut off, they reconnect and send those changes again.
                    self.cut_off_waiting_writers();
                }
                self.publish(HandleState::Unloaded);
                let _ = reply.send(());
                if let Some(hub) = self.hub.upgrade() {
                    let _ = hub
                        .send(HubEvent::Unloaded(self.shared.document_id.clone()))
                        .await;
                }
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Gossip hears of peers that start syncing this document: they may want its remote heads.
    fn opened_by(&self, peer: &PeerId, known_before: bool) {
        if let Some(gossip) = &self.ctx.gossip {
            if !known_before && self.sync.has_peer(peer) {
                gossip.peer_opened(peer, &self.shared.document_id);
            }
        }
    }

    fn gossiped_heads(&mut self, storage_id: StorageId, remote: RemoteHeads) {
        match RemoteHeadsEvent::from_gossip(storage_id, &remote) {
            Some(event) => self.record_remote_heads(event),
            None => warn!("gossiped heads are not change hashes; ignored"),
        }
    }

    /// Keeps the newest heads per storage on the handle and tells its listeners.
    fn record_remote_heads(&mut self, event: RemoteHeadsEvent) {
        {
            let mut known = self
                .shared
                .remote_heads
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if known
                .get(&event.storage_id)
                .is_some_and(|old| old.timestamp > event.timestamp)
            {
                return;
            }
            known.insert(event.storage_id.clone(), event.clone());
        }
        self.shared.remote_heads_events.send(event);
    }

    /// Reads the document's chunks and merges them into the handle's document.
    async fn load(&mut self) {
        let Some(storage) = self.ctx.storage.clone() else {
            return;
        };
        let document_id = self.shared.document_id.clone();
        let chunks = match read_document_chunks(storage.as_ref(), &document_id).await {
            Ok(chunks) => chunks,
            Err(error) => {
                warn!(%error, "reading the document from storage failed");
                return;
            }
        };
        let bytes = chunks.iter().map(|(_, chunk)| chunk.len()).sum();
        heavy(bytes, || {
            let loaded = load_document(&document_id, chunks);
            for chunk in &loaded.corrupt {
                warn!(key = ?chunk.key, error = %chunk.error, "skipping corrupt chunk");
            }
            let mut merged = true;
            if let Some(mut stored) = loaded.document {
                let mut doc = self.shared.lock();
                // What memory holds (usually nothing yet) goes into what storage held, not
                // the other way: automerge rebuilds the changes it merges, and a stored
                // change another writer left may be one it cannot rebuild
                // (`tandem_core::untrusted`).
                stored.set_actor(doc.get_actor().clone());
                let taken = doc.get_heads().is_empty()
                    || apply_untrusted(&mut stored, |s| s.merge(&mut doc).map(drop)).is_ok();
                if taken {
                    *doc = stored;
                } else if let Err(error) =
                    apply_untrusted(&mut doc, |d| d.merge(&mut stored).map(drop))
                {
                    warn!(%error, "stored document could not be merged");
                    merged = false;
                }
                self.last_heads = doc.get_heads();
            }
            // A stored document that could not be merged is not in memory: a ledger that counted
            // its chunks as saved would let a compaction remove them.
            if merged {
                self.ledger = loaded.ledger;
            }
        })
        .await;
    }

    async fn peer_connected(&mut self, link: PeerLink, announce_any: bool) {
        let peer = link.peer_id.clone();
        self.links.insert(peer.clone(), link.clone());
        if self.sync.has_peer(&peer) {
            return;
        }
        if self.should_share(&peer, announce_any).await {
            self.start_sync(link).await;
        }
    }

    /// Whether to sync with `peer`: offered if announced; asked for if we lack the document and
    /// look for it; synced on if the peer asked for it on its current connection. The last two
    /// only with access.
    /// A peer the policy offers nothing at all (`announce_any` false) is not asked about this
    /// document's announcement, as when it connected.
    async fn should_share(&self, peer: &PeerId, announce_any: bool) -> bool {
        let document_id = &self.shared.document_id;
        let policy = &self.ctx.policy;
        let missing = self.sync.state() != HandleState::Ready;
        let asked_or_looking = self.sync.was_asked_by(peer) || (self.wanted_locally && missing);
        (announce_any && policy.announce(peer, Some(document_id)).await)
            || (asked_or_looking && policy.access(peer, document_id).await)
    }

    /// Decides again, after a share-policy change, for every connected peer: starts syncing
    /// with those now shared with, stops with those no longer shared with (automerge-repo's
    /// `shareConfigChanged`). A peer that stops keeps its connection; a later change back
    /// resumes from the heads the two last shared.
    async fn share_policy_changed(&mut self, peers: Vec<(PeerLink, bool)>) {
        for (link, announce_any) in peers {
            let peer = link.peer_id.clone();
            let known = self.sync.has_peer(&peer);
            let share = self.should_share(&peer, announce_any).await;
            if share && !known {
                self.links.insert(peer.clone(), link.clone());
                self.start_sync(link).await;
                self.opened_by(&peer, known);
            } else if !share && known {
                debug!(%peer, "share policy no longer shares the document with this peer");
                self.stop_sync(&peer);
            }
        }
    }

    /// Takes `peer` out of the sync set: the share policy no longer shares the document with it.
    fn stop_sync(&mut self, peer: &PeerId) {
        // Built against the sync state that just ended: not for what comes next.
        self.acks.connection_ended(peer);
        let out = self.sync.remove_peer(peer);
        self.apply(out, None);
    }

    /// Adds `link`'s peer to the sync set, with the sync state stored for it, and says hello.
    async fn start_sync(&mut self, link: PeerLink) {
        let peer = link.peer_id.clone();
        // A state remembered from before wins over a stored one: no need to read it.
        let stored = if self.sync.remembers(&peer) {
            None
        } else {
            self.stored_sync_state(&link).await
        };
        let out = {
            let doc = self.shared.lock();
            self.sync.add_peer(&doc, peer, &link.metadata, stored)
        };
        self.apply(out, None);
    }

    async fn incoming(&mut self, from: PeerLink, message: Message) {
        let peer = from.peer_id.clone();
        self.links.insert(peer.clone(), from.clone());
        let document_id = self.shared.document_id.clone();
        // Access is checked when a peer first touches the document; once in the sync set it
        // stays allowed until it leaves.
        let needs_access = matches!(
            message,
            Message::Sync(_) | Message::Request(_) | Message::Ephemeral(_)
        ) && !self.sync.has_peer(&peer);
        if matches!(message, Message::Sync(_) | Message::Request(_)) {
            // Even if refused now: should the policy grant access later
            // (`Repo::share_policy_changed`), the peer is synced with, as in automerge-repo.
            self.sync.note_asked(&peer);
        }
        if needs_access && !self.ctx.policy.access(&peer, &document_id).await {
            debug!(%peer, "access denied");
            from.outbox
                .send(Message::DocUnavailable(DocUnavailableMessage {
                    sender_id: self.ctx.peer_id.clone(),
                    target_id: peer,
                    document_id,
                }));
            return;
        }
        match message {
            Message::Sync(ref m) | Message::Request(ref m) => {
                let request = matches!(message, Message::Request(_));
                let stored = if self.sync.remembers(&peer) {
                    None
                } else {
                    self.stored_sync_state(&from).await
                };
                self.catch_up_local();
                // Patches for listeners are logged while the change is applied: a diff
                // afterwards would walk the whole document for every change.
                let listened = self.shared.changes.receiver_count() > 0;
                let mut patch_log = PatchLog::new(listened);
                // A whole document from a peer that had nothing takes long to apply.
                let result = heavy(m.data.as_bytes().len(), || {
                    let mut doc = self.shared.lock();
                    let result = self.sync.receive_sync_logging(
                        &mut doc,
                        &peer,
                        &from.metadata,
                        stored,
                        m.data.as_bytes(),
                        request,
                        &mut patch_log,
                    );
                    if listened && matches!(&result, Ok(out) if out.document_changed) {
                        self.logged_patches =
                            Some((doc.get_heads(), doc.make_patches(&mut patch_log)));
                    }
                    result
                })
                .await;
                match result {
                    Ok(out) => self.apply(out, Some(&peer)),
                    Err(error) => {
                        // A peer that sends what automerge cannot take is broken or hostile:
                        // it loses its connection (and may come back); nobody else notices.
                        warn!(%peer, %error, "bad sync message; disconnecting the peer");
                        from.outbox.close();
                    }
                }
            }
            Message::DocUnavailable(_) => {
                let out = self.sync.receive_doc_unavailable(&peer);
                self.apply(out, None);
            }
            Message::Ephemeral(m) => self.ephemeral_received(&peer, m),
            other => debug!(kind = other.type_name(), "not a document message; ignored"),
        }
    }

    fn ephemeral_received(&mut self, hop: &PeerId, message: EphemeralMessage) {
        // JS receivers drop values that are not CBOR; so do we, before anyone sees them.
        if ciborium::from_reader::<ciborium::Value, _>(message.data.as_bytes()).is_err() {
            warn!(peer = %hop, "ephemeral data is not CBOR; dropped");
            return;
        }
        self.shared.ephemeral.send(EphemeralEvent {
            sender_id: message.sender_id.clone(),
            data: message.data.as_bytes().to_vec(),
        });
        // Forward to the document's other peers, keeping sender, session and count. Neither the
        // original sender nor the hop it came from gets it back (JS echoes to the hop).
        for peer in self.sync.peers() {
            if peer == &message.sender_id || peer == hop {
                continue;
            }
            if let Some(link) = self.links.get(peer) {
                let mut forward = message.clone();
                forward.target_id = peer.clone();
                link.outbox.send(Message::Ephemeral(forward));
            }
        }
    }

    fn broadcast(&mut self, data: Vec<u8>) {
        let Ok(data) = tandem_core::MessageData::new(data) else {
            return; // CBOR never encodes a value as zero bytes
        };
        for peer in self.sync.peers() {
            if let Some(link) = self.links.get(peer) {
                link.outbox.send(Message::Ephemeral(EphemeralMessage {
                    sender_id: self.ctx.peer_id.clone(),
                    target_id: peer.clone(),
                    document_id: self.shared.document_id.clone(),
                    data: data.clone(),
                    count: self.ctx.next_ephemeral_count(),
                    session_id: self.ctx.session_id.clone(),
                }));
            }
        }
    }

    /// A local change happened (or several: notifications coalesce): tell the peers.
    fn local_change(&mut self) {
        let out = {
            let doc = self.shared.lock();
            let logged = self
                .shared
                .local_patches
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if doc.get_heads() == self.last_heads {
                return;
            }
            if let Some(logged) = logged.filter(|l| l.from == self.last_heads) {
                self.logged_patches = Some((logged.to, logged.patches));
            }
            self.sync.document_changed(&doc)
        };
        self.apply(out, None);
        self.after_change(ChangeOrigin::Local);
    }

    /// Local changes not yet announced go out before a remote change is applied, so that each
    /// change event names the right origin.
    fn catch_up_local(&mut self) {
        let pending = self.shared.lock().get_heads() != self.last_heads;
        if pending {
            self.local_change();
        }
    }

    fn apply(&mut self, out: SyncOutput, origin: Option<&PeerId>) {
        // A peer's changes are acknowledged only once saved: until then every message to that
        // peer waits (in order) for the save. Other peers hear of the changes at once; should
        // the save never happen, the sender still has them and sends them again.
        if self.ctx.durable_acks && out.document_changed {
            if let Some(origin) = origin {
                self.acks.changed_by(origin);
                self.save_at = Some(Instant::now());
            }
        }
        let now = self.acks.route(out.messages);
        self.send_all(now);
        if self.acks.held_len() > MAX_HELD {
            self.cut_off_waiting_writers();
        }
        if !out.sync_states.is_empty() {
            self.dirty_sync_states.extend(out.sync_states);
            self.schedule_save();
        }
        for (storage_id, heads) in out.remote_heads {
            let mut timestamp = now_millis();
            if let Some(gossip) = &self.ctx.gossip {
                // The handle keeps the stamp gossip gave the record, so that the record relayed
                // back to us later is not mistaken for newer news.
                timestamp =
                    gossip.direct_heads(&self.shared.document_id, &storage_id, &heads, timestamp);
            }
            self.record_remote_heads(RemoteHeadsEvent {
                storage_id,
                heads,
                timestamp,
            });
        }
        // The change event goes out before the state: whoever waited for `Ready` and then
        // subscribes must not see the change that made the document ready.
        if out.document_changed {
            let origin = origin.map_or(ChangeOrigin::Local, |p| ChangeOrigin::Peer(p.clone()));
            self.after_change(origin);
        }
        if let Some(state) = out.state_change {
            self.publish(state);
        }
    }

    fn send_all(&self, messages: Vec<Message>) {
        for message in messages {
            let target = message.target_id().cloned();
            match target.and_then(|t| self.links.get(&t)) {
                Some(link) => link.outbox.send(message),
                None => debug!(kind = message.type_name(), "peer gone; message dropped"),
            }
        }
    }

    fn publish(&mut self, state: HandleState) {
        self.find_deadline = match state {
            HandleState::Requesting => Some(Instant::now() + self.ctx.timing.find_timeout),
            _ => None,
        };
        self.shared.state.send_replace(state);
    }

    fn after_change(&mut self, origin: ChangeOrigin) {
        let logged = self.logged_patches.take();
        let (heads, patches) = {
            let doc = self.shared.lock();
            let heads = doc.get_heads();
            if heads == self.last_heads {
                return;
            }
            // Patches logged as the change was applied lead from `last_heads` (local changes
            // were announced first) to the heads logged with them; if the application changed
            // the document since, or nothing was logged, they cost a diff, computed only for
            // someone listening.
            let patches = match logged {
                Some((logged_heads, patches)) if logged_heads == heads => patches,
                _ if self.shared.changes.receiver_count() > 0 => doc.diff(&self.last_heads, &heads),
                _ => Vec::new(),
            };
            (heads, patches)
        };
        self.last_heads = heads.clone();
        self.shared.changes.send(DocumentChange {
            heads,
            patches: patches.into(),
            origin,
        });
        self.schedule_save();
    }

    fn schedule_save(&mut self) {
        if self.ctx.storage.is_some() && self.save_at.is_none() {
            self.save_at = Some(Instant::now() + self.ctx.timing.save_debounce);
        }
    }

    /// Writes what changed since the last save and waits for it: a chunk (incremental or
    /// compacting snapshot) and the sync states of peers that moved. On failure the save stays
    /// pending and is retried.
    async fn save(&mut self) -> Result<(), RepoError> {
        // A save already running lands first: plans are made one after the other.
        if let Err(error) = self.finish_saving().await {
            debug!(%error, "the save in flight failed; saving again");
        }
        self.start_save();
        self.finish_saving().await
    }

    /// Plans the next save and starts writing it beside the worker.
    fn start_save(&mut self) {
        self.save_at = None;
        let number = self.acks.save_started();
        // Without storage there is nothing to plan (a plan can mean serialising the document).
        let Some(storage) = self.ctx.storage.clone() else {
            self.release_saved(number);
            return;
        };
        let now = Instant::now();
        let busy = self
            .last_save_at
            .is_some_and(|last| now.duration_since(last) < self.ctx.timing.save_debounce);
        self.last_save_at = Some(now);
        let plan = {
            let doc = self.shared.lock();
            // A peer waits for its acknowledgement on a document written to without pause: the
            // cheapest durable write now, the compaction (a whole-document save, and a load to
            // check it) once saves go quiet. A lone change is saved as the rule says: quick, it
            // would cost a second write for the compaction.
            if busy && self.acks.anyone_waiting() {
                self.ledger.plan_quick_save(&doc)
            } else {
                self.ledger.plan_save(&doc)
            }
        };
        let sync_states = std::mem::take(&mut self.dirty_sync_states);
        if plan.is_none() && sync_states.is_empty() {
            // Nothing new to write: whatever waited is already durable.
            self.release_saved(number);
            return;
        }
        self.saving_number = number;
        let job = SaveJob { plan, sync_states };
        self.saving = Some(save_task::spawn(
            storage,
            self.shared.document_id.clone(),
            job,
        ));
    }

    /// Waits for the save in flight, if any, and takes in its outcome.
    async fn finish_saving(&mut self) -> Result<(), RepoError> {
        match self.saving.take() {
            None => Ok(()),
            Some(outcome) => self.save_finished(outcome.await.ok()),
        }
    }

    /// Takes in a save's outcome (`None`: the task ended without one).
    fn save_finished(&mut self, outcome: Option<SaveOutcome>) -> Result<(), RepoError> {
        let Some(outcome) = outcome else {
            self.save_at = Some(Instant::now() + self.ctx.timing.save_debounce);
            return Err(tandem_core::StorageError::Closed.into());
        };
        if let Some(plan) = &outcome.saved_plan {
            self.ledger.record_saved(plan);
        }
        for (storage_id, bytes) in outcome.unsaved_sync_states {
            // A state that moved again since is newer than the one that failed.
            self.dirty_sync_states.entry(storage_id).or_insert(bytes);
        }
        if let Some(why) = &outcome.snapshot_refused {
            warn!(
                document_id = %self.shared.document_id,
                why, "not compacting: the changes are saved as an incremental, every chunk stays"
            );
            self.ledger.refuse_snapshots();
            // Nothing was written: save again at once, as an incremental.
            self.save_at = Some(Instant::now());
            return Ok(());
        }
        if outcome.chunk_stored {
            self.release_saved(self.saving_number);
            if self.ledger.compaction_pending() {
                self.schedule_save();
            }
        }
        if let Err(error) = outcome.result {
            self.save_at = Some(Instant::now() + self.ctx.timing.save_debounce);
            return Err(error.into());
        }
        Ok(())
    }

    /// Disconnects every peer with changes or messages waiting for a save, and drops those
    /// messages (they were built for connections that end here). The peers still hold the
    /// changes that were not acknowledged, and send them again on their next connection.
    fn cut_off_waiting_writers(&mut self) {
        for peer in self.acks.drop_waiting() {
            warn!(
                %peer,
                held = MAX_HELD,
                "the document's saves keep failing and its messages to this peer pile up; disconnecting it"
            );
            if let Some(link) = self.links.get(&peer) {
                link.outbox.close();
            }
        }
    }

    /// Save `number` landed: the messages that waited for it go.
    fn release_saved(&mut self, number: u64) {
        let go = self.acks.save_landed(number);
        self.send_all(go);
    }

    async fn stored_sync_state(&self, link: &PeerLink) -> Option<SyncState> {
        let storage = self.ctx.storage.as_ref()?;
        if link.metadata.is_ephemeral {
            return None;
        }
        let storage_id = link.metadata.storage_id.as_ref()?;
        let key =
            ChunkKey::sync_state(self.shared.document_id.clone(), storage_id).to_storage_key();
        match storage.load(&key).await {
            Ok(Some(bytes)) => match SyncState::decode(&bytes) {
                Ok(state) => Some(state),
                Err(error) => {
                    warn!(?key, %error, "stored sync state is corrupt; starting afresh");
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                warn!(?key, %error, "could not read a sync state");
                None
            }
        }
    }

    async fn delete(&mut self) {
        // A write still running must not recreate a chunk after the removal below.
        let _ = self.finish_saving().await;
        self.save_at = None;
        self.dirty_sync_states.clear();
        self.sync.set_state(HandleState::Deleted);
        *self.shared.lock() = Automerge::new();
        self.publish(HandleState::Deleted);
        if let Some(storage) = &self.ctx.storage {
            let prefix = StorageKey::document(&self.shared.document_id);
            if let Err(error) = storage.remove_range(&prefix).await {
                warn!(%error, "could not remove the deleted document from storage");
            }
        }
    }

    /// Asks the hub to unload this document if nobody but the repo holds its handle and nothing
    /// happened for the idle time. The hub decides (it alone hands out handles).
    fn consider_unloading(&mut self) {
        let Some(idle) = self.ctx.timing.idle_timeout else {
            return;
        };
        if self.last_activity.elapsed() < idle {
            return;
        }
        self.last_activity = Instant::now();
        // The worker and the hub each hold one reference; anything more is a user's handle.
        let unheld = Arc::strong_count(&self.shared) <= 2;
        // Peers' changes not yet saved (storage failing) keep the document here until they are.
        if unheld && self.sync.state().is_settled() && !self.acks.anyone_waiting() {
            if let Some(hub) = self.hub.upgrade() {
                let _ = hub.try_send(HubEvent::Idle(self.shared.document_id.clone()));
            }
        }
    }
}

/// The outcome of the save in flight; pending forever when there is none.
async fn saving_done(saving: &mut Option<oneshot::Receiver<SaveOutcome>>) -> Option<SaveOutcome> {
    match saving {
        Some(outcome) => outcome.await.ok(),
        None => std::future::pending().await,
    }
}
