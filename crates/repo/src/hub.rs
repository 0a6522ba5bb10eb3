//! The repo's central task: it owns the connections and the table of documents, and routes.
//!
//! The hub does no document work. It turns an incoming message into one send to one document's
//! worker, a connection into one `PeerConnected` per document the peer could be offered, and a
//! command into a worker spawn or a fan-out of acknowledgements. Everything slow (applying sync
//! messages, saving, share-policy calls) happens in the workers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use automerge::Automerge;
use futures::{SinkExt, StreamExt};
use tandem_core::sync::{EphemeralDedup, HandleState};
use tandem_core::{Connection, DocUnavailableMessage, DocumentId, Message, PeerId, PeerMetadata};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::context::RepoContext;
use crate::document_worker::{self, Begin, DocEvent};
use crate::events::RemoteHeadsEvent;
use crate::handle::{DocHandle, HandleShared};
use crate::introductions::Introductions;
use crate::outbox::{outbox, OutboxReceiver, PeerLink};
use crate::RepoError;

/// Queue depth of the hub's inbox and of each document worker's inbox: a full queue makes the
/// sender (a connection reader, the hub) wait, which pushes back on the network.
pub(crate) const QUEUE_DEPTH: usize = 1024;

pub(crate) type ConnectionId = u64;

pub(crate) enum HubEvent {
    Command(Command),
    Connected(Connection),
    Incoming(ConnectionId, Message),
    Disconnected(ConnectionId),
    /// A worker found its document unheld and idle.
    Idle(DocumentId),
    /// A worker stopped after an eviction.
    Unloaded(DocumentId),
    /// A worker panicked; its handles are unavailable.
    WorkerFailed(Arc<HandleShared>),
}

pub(crate) enum Command {
    Create {
        document_id: DocumentId,
        document: Box<Automerge>,
        reply: oneshot::Sender<DocHandle>,
    },
    Find {
        document_id: DocumentId,
        reply: oneshot::Sender<DocHandle>,
    },
    Delete {
        document_id: DocumentId,
        reply: oneshot::Sender<()>,
    },
    Flush {
        documents: Option<Vec<DocumentId>>,
        reply: oneshot::Sender<Result<(), RepoError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    Documents {
        reply: oneshot::Sender<Vec<DocumentId>>,
    },
    /// The share policy answers differently now: every document in memory decides again which
    /// connected peers it syncs with. Answered once every worker has.
    SharePolicyChanged {
        reply: oneshot::Sender<()>,
    },
    /// How many (connection, document) introductions the hub keeps: what a long-lived
    /// connection would leak if unloaded documents stayed introduced.
    #[cfg(test)]
    Introductions {
        reply: oneshot::Sender<usize>,
    },
}

struct ConnectionEntry {
    id: ConnectionId,
    link: PeerLink,
    /// Whether the share policy offers this peer anything unprompted (`announce(peer, None)`).
    /// If not, the hub keeps which documents' workers know it, in `introductions`; if so, every
    /// worker knows it.
    announce_any: bool,
}

pub(crate) struct Hub {
    ctx: Arc<RepoContext>,
    inbox: mpsc::Receiver<HubEvent>,
    me: mpsc::WeakSender<HubEvent>,
    documents: HashMap<DocumentId, DocHandle>,
    /// Workers of evicted documents still saving; a new worker for the id waits for them.
    unloading: HashMap<DocumentId, oneshot::Receiver<()>>,
    /// Documents found through this repo's API (not only for a peer): any peer may be asked for
    /// them, whatever the share policy offers it.
    wanted: HashSet<DocumentId>,
    connections: HashMap<PeerId, ConnectionEntry>,
    connection_peers: HashMap<ConnectionId, PeerId>,
    /// Which documents' workers know which peers (those not offered everything).
    introductions: Introductions,
    next_connection: ConnectionId,
    dedup: EphemeralDedup,
    peers: watch::Sender<BTreeMap<PeerId, PeerMetadata>>,
}

impl Hub {
    pub(crate) fn new(
        ctx: Arc<RepoContext>,
        inbox: mpsc::Receiver<HubEvent>,
        me: mpsc::WeakSender<HubEvent>,
        peers: watch::Sender<BTreeMap<PeerId, PeerMetadata>>,
    ) -> Hub {
        Hub {
            ctx,
            inbox,
            me,
            documents: HashMap::new(),
            unloading: HashMap::new(),
            wanted: HashSet::new(),
            connections: HashMap::new(),
            connection_peers: HashMap::new(),
            introductions: Introductions::default(),
            next_connection: 0,
            dedup: EphemeralDedup::default(),
            peers,
        }
    }

    pub(crate) async fn run(mut self) {
        while let Some(event) = self.inbox.recv().await {
            match event {
                HubEvent::Command(Command::Shutdown { reply }) => {
                    self.shutdown().await;
                    let _ = reply.send(());
                    return;
                }
                HubEvent::Command(command) => self.command(command).await,
                HubEvent::Connected(connection) => self.connected(connection).await,
                HubEvent::Incoming(id, message) => self.incoming(id, message).await,
                HubEvent::Disconnected(id) => self.disconnected(id).await,
                HubEvent::Idle(document_id) => self.idle(document_id).await,
                HubEvent::WorkerFailed(shared) => {
                    let document_id = &shared.document_id;
                    // Only if it is still this worker's entry (a newer one may have replaced it).
                    if self
                        .documents
                        .get(document_id)
                        .is_some_and(|handle| Arc::ptr_eq(&handle.shared, &shared))
                    {
                        self.documents.remove(document_id);
                        self.forget_introductions(document_id);
                    }
                }
                HubEvent::Unloaded(document_id) => {
                    // The entry may belong to a newer worker for the id that is itself stopping
                    // (the one that sent this took its entry when it was replaced): only an entry
                    // whose worker has finished goes, or a worker started next would read storage
                    // before the stopping one's last save.
                    let finished = self.unloading.get_mut(&document_id).is_some_and(|stopped| {
                        !matches!(stopped.try_recv(), Err(oneshot::error::TryRecvError::Empty))
                    });
                    if finished {
                        self.unloading.remove(&document_id);
                    }
                    if !self.documents.contains_key(&document_id) {
                        self.wanted.remove(&document_id);
                        self.forget_introductions(&document_id);
                        if let Some(gossip) = &self.ctx.gossip {
                            gossip.forget_document(&document_id);
                        }
                    }
                }
            }
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Create {
                document_id,
                document,
                reply,
            } => {
                let handle = self.spawn(document_id, *document, Begin::Created);
                let _ = reply.send(handle);
            }
            Command::Find { document_id, reply } => {
                let newly_wanted = self.wanted.insert(document_id.clone());
                let handle = match self.documents.get(&document_id) {
                    Some(handle) => {
                        let handle = handle.clone();
                        if newly_wanted {
                            // Found here before only for a peer: now every peer may be asked.
                            let mut links: Vec<(PeerLink, bool)> = Vec::new();
                            for (peer, connection) in &self.connections {
                                if !connection.announce_any {
                                    self.introductions.introduce(peer, &document_id);
                                }
                                links.push((connection.link.clone(), connection.announce_any));
                            }
                            let _ = handle.shared.worker.send(DocEvent::WantedLocally).await;
                            for (link, announce_any) in links {
                                let _ = handle
                                    .shared
                                    .worker
                                    .send(DocEvent::PeerConnected(link, announce_any))
                                    .await;
                            }
                        }
                        handle
                    }
                    None => self.spawn_loader(document_id),
                };
                let _ = reply.send(handle);
            }
            Command::Delete { document_id, reply } => {
                self.wanted.remove(&document_id);
                self.forget_introductions(&document_id);
                if let Some(gossip) = &self.ctx.gossip {
                    gossip.forget_document(&document_id);
                }
                let handle = match self.documents.remove(&document_id) {
                    Some(handle) => handle,
                    // Not in memory: a short-lived worker (never listed) removes it from storage.
                    None => {
                        let handle = self.spawn_loader(document_id.clone());
                        self.documents.remove(&document_id);
                        handle
                    }
                };
                if handle
                    .shared
                    .worker
                    .send(DocEvent::Delete(reply))
                    .await
                    .is_err()
                {
                    warn!(%document_id, "worker gone before delete");
                }
            }
            Command::Flush { documents, reply } => {
                let targets: Vec<DocHandle> = match documents {
                    Some(ids) => ids
                        .iter()
                        .filter_map(|id| self.documents.get(id).cloned())
                        .collect(),
                    None => self.documents.values().cloned().collect(),
                };
                let mut acks = Vec::with_capacity(targets.len());
                for handle in targets {
                    let (tx, rx) = oneshot::channel();
                    if handle.shared.worker.send(DocEvent::Flush(tx)).await.is_ok() {
                        acks.push(rx);
                    }
                }
                // Waiting is the caller's business, not the hub's.
                tokio::spawn(async move {
                    let mut result = Ok(());
                    for ack in acks {
                        match ack.await {
                            Ok(Err(error)) if result.is_ok() => result = Err(error),
                            _ => {}
                        }
                    }
                    let _ = reply.send(result);
                });
            }
            Command::Documents { reply } => {
                let _ = reply.send(self.documents.keys().cloned().collect());
            }
            Command::SharePolicyChanged { reply } => self.share_policy_changed(reply).await,
            #[cfg(test)]
            Command::Introductions { reply } => {
                let _ = reply.send(self.introductions.len());
            }
            Command::Shutdown { reply } => {
                // `run` handles shutdown before dispatching here; answer anyway.
                let _ = reply.send(());
            }
        }
    }

    fn spawn_loader(&mut self, document_id: DocumentId) -> DocHandle {
        let after = self.unloading.remove(&document_id);
        let wanted_locally = self.wanted.contains(&document_id);
        self.spawn(
            document_id,
            Automerge::new(),
            Begin::Load {
                after,
                wanted_locally,
            },
        )
    }

    fn spawn(&mut self, document_id: DocumentId, document: Automerge, start: Begin) -> DocHandle {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let state = match start {
            Begin::Load { .. } => HandleState::Loading,
            Begin::Created => HandleState::Ready,
        };
        let shared = Arc::new(HandleShared::new(
            document_id.clone(),
            document,
            state,
            tx,
            self.me.clone(),
        ));
        if let Some(gossip) = &self.ctx.gossip {
            // Gossip may have told us about the document before anyone opened it here.
            let mut known = shared
                .remote_heads
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (storage_id, heads) in gossip.subscribed_heads(&document_id) {
                if let Some(event) = RemoteHeadsEvent::from_gossip(storage_id.clone(), &heads) {
                    known.insert(storage_id, event);
                }
            }
        }
        // A document we look for may be asked of any peer; otherwise only peers that may be
        // offered documents are candidates.
        let any_peer = matches!(
            start,
            Begin::Load {
                wanted_locally: true,
                ..
            }
        );
        let mut peers = Vec::new();
        for (peer, connection) in &self.connections {
            if connection.announce_any {
                peers.push((connection.link.clone(), true));
            } else if any_peer {
                self.introductions.introduce(peer, &document_id);
                peers.push((connection.link.clone(), false));
            }
        }
        document_worker::spawn(
            shared.clone(),
            self.ctx.clone(),
            self.me.clone(),
            rx,
            start,
            peers,
        );
        let handle = DocHandle { shared, view: None };
        self.documents.insert(document_id, handle.clone());
        handle
    }

    async fn connected(&mut self, connection: Connection) {
        let Connection {
            remote,
            outgoing,
            incoming,
        } = connection;
        let peer = remote.peer_id.clone();
        if peer == self.ctx.peer_id {
            warn!(%peer, "a peer claims our own id; refusing it");
            return;
        }
        // A second connection from one peer id takes over, as on a JS server.
        if let Some(old) = self.connections.remove(&peer) {
            info!(%peer, "peer reconnected; closing its previous connection");
            old.link.outbox.close();
            self.connection_peers.remove(&old.id);
            if let Some(gossip) = &self.ctx.gossip {
                gossip.peer_disconnected(&peer);
            }
            self.tell_departure(&peer, old).await;
        }
        let id = self.next_connection;
        self.next_connection += 1;
        let (outbox, outbox_rx) = outbox();
        let link = PeerLink {
            peer_id: peer.clone(),
            metadata: remote.metadata.clone(),
            outbox,
        };
        tokio::spawn(write_connection(outbox_rx, outgoing));
        if let Some(hub) = self.me.upgrade() {
            tokio::spawn(read_connection(id, link.clone(), incoming, hub));
        }
        let announce_any = self.ctx.policy.announce(&peer, None).await;
        info!(%peer, announce_any, "peer connected");
        self.connections.insert(
            peer.clone(),
            ConnectionEntry {
                id,
                link: link.clone(),
                announce_any,
            },
        );
        self.connection_peers.insert(id, peer.clone());
        if let Some(gossip) = &self.ctx.gossip {
            gossip.peer_connected(link.clone(), announce_any);
        }
        self.peers.send_modify(|peers| {
            peers.insert(peer.clone(), remote.metadata.clone());
        });
        if announce_any {
            self.tell_all(|| DocEvent::PeerConnected(link.clone(), true))
                .await;
        } else {
            // Offered nothing, but it may have what we are looking for.
            let wanted: Vec<DocHandle> = self
                .wanted
                .iter()
                .filter_map(|id| self.documents.get(id).cloned())
                .collect();
            for handle in &wanted {
                self.introductions.introduce(&peer, handle.document_id());
            }
            for handle in wanted {
                let _ = handle
                    .shared
                    .worker
                    .send(DocEvent::PeerConnected(link.clone(), false))
                    .await;
            }
        }
    }

    /// `Repo::share_policy_changed`: asks the policy again whether each peer is offered anything,
    /// then has every document's worker decide again for every peer.
    async fn share_policy_changed(&mut self, reply: oneshot::Sender<()>) {
        let mut peers = Vec::with_capacity(self.connections.len());
        let mut withdrawn = Vec::new();
        for (peer, connection) in &mut self.connections {
            let announce_any = self.ctx.policy.announce(peer, None).await;
            if connection.announce_any && !announce_any {
                withdrawn.push(peer.clone());
            }
            connection.announce_any = announce_any;
            peers.push((connection.link.clone(), announce_any));
        }
        // A peer offered everything until now was told to every worker, and the hub kept no
        // introductions for it. Its departure must still reach them all. (A peer offered nothing
        // before and now is only synced on where it asked or is asked, which `incoming` and
        // `Find` already introduced; one offered everything now is told to every worker.)
        for peer in &withdrawn {
            for document_id in self.documents.keys() {
                self.introductions.introduce(peer, document_id);
            }
        }
        let mut acks = Vec::with_capacity(self.documents.len());
        let mut gone = Vec::new();
        for (document_id, handle) in &self.documents {
            let (done, ack) = oneshot::channel();
            let event = DocEvent::SharePolicyChanged {
                peers: peers.clone(),
                done,
            };
            if handle.shared.worker.send(event).await.is_ok() {
                acks.push(ack);
            } else {
                gone.push(document_id.clone());
            }
        }
        for document_id in gone {
            self.documents.remove(&document_id);
        }
        // Waiting is the caller's business, not the hub's.
        tokio::spawn(async move {
            for ack in acks {
                let _ = ack.await;
            }
            let _ = reply.send(());
        });
    }

    async fn disconnected(&mut self, id: ConnectionId) {
        let Some(peer) = self.connection_peers.remove(&id) else {
            return; // an older connection of a peer that has since reconnected
        };
        let entry = self.connections.remove(&peer);
        info!(%peer, "peer disconnected");
        if let Some(gossip) = &self.ctx.gossip {
            gossip.peer_disconnected(&peer);
        }
        self.peers.send_modify(|peers| {
            peers.remove(&peer);
        });
        if let Some(entry) = entry {
            entry.link.outbox.close();
            self.tell_departure(&peer, entry).await;
        }
    }

    /// Tells the workers that know `peer` that it is gone: every worker if the share policy
    /// offered it everything, otherwise only those of the documents it was introduced to.
    async fn tell_departure(&mut self, peer: &PeerId, entry: ConnectionEntry) {
        let introduced = self.introductions.peer_left(peer);
        if entry.announce_any {
            self.tell_all(|| DocEvent::PeerDisconnected(peer.clone()))
                .await;
            return;
        }
        for document_id in introduced {
            let Some(handle) = self.documents.get(&document_id) else {
                continue; // unloaded since: its worker is gone
            };
            if handle
                .shared
                .worker
                .send(DocEvent::PeerDisconnected(peer.clone()))
                .await
                .is_err()
            {
                self.documents.remove(&document_id);
            }
        }
    }

    /// A document left memory (or was deleted): no worker of it knows any peer any more, so no
    /// departure needs telling it. Without this, a connection that lives for days would keep the
    /// id of every document it ever touched.
    fn forget_introductions(&mut self, document_id: &DocumentId) {
        self.introductions.document_gone(document_id);
    }

    /// Sends an event to every document's worker.
    async fn tell_all(&mut self, event: impl Fn() -> DocEvent) {
        let mut gone = Vec::new();
        for (id, handle) in &self.documents {
            if handle.shared.worker.send(event()).await.is_err() {
                gone.push(id.clone());
            }
        }
        for id in gone {
            self.documents.remove(&id);
        }
    }

    async fn incoming(&mut self, connection: ConnectionId, message: Message) {
        let Some(peer) = self.connection_peers.get(&connection).cloned() else {
            return;
        };
        let Some(entry) = self.connections.get(&peer) else {
            return;
        };
        let link = entry.link.clone();
        // Only ephemeral messages are relayed with their original sender; anything else must
        // come from the peer itself.
        let own = matches!(
            message,
            Message::Sync(_)
                | Message::Request(_)
                | Message::DocUnavailable(_)
                | Message::RemoteSubscriptionChange(_)
                | Message::RemoteHeadsChanged(_)
        );
        if own && message.sender_id() != &peer {
            warn!(%peer, claimed = %message.sender_id(), "peer lies about its id; disconnecting it");
            link.outbox.close();
            return;
        }
        if matches!(
            message,
            Message::RemoteSubscriptionChange(_) | Message::RemoteHeadsChanged(_)
        ) {
            self.gossip_received(&message).await;
            return;
        }
        let Some(document_id) = message.document_id().cloned() else {
            debug!(%peer, kind = message.type_name(), "message ignored");
            return;
        };
        if self.ctx.denylist.contains(&document_id) {
            if matches!(message, Message::Sync(_) | Message::Request(_)) {
                link.outbox
                    .send(Message::DocUnavailable(DocUnavailableMessage {
                        sender_id: self.ctx.peer_id.clone(),
                        target_id: peer,
                        document_id,
                    }));
            }
            return;
        }
        if let Message::Ephemeral(m) = &message {
            if !self.dedup.accept(&m.sender_id, &m.session_id, m.count) {
                return;
            }
        }
        let handle = match self.documents.get(&document_id) {
            Some(handle) => handle.clone(),
            // A doc-unavailable for a document we are not looking for answers nothing.
            None if matches!(message, Message::DocUnavailable(_)) => return,
            None => self.spawn_loader(document_id.clone()),
        };
        if self.connections.get(&peer).is_some_and(|c| !c.announce_any) {
            self.introductions.introduce(&peer, &document_id);
        }
        let event = DocEvent::Incoming(Box::new((link, message)));
        if handle.shared.worker.send(event).await.is_err() {
            self.documents.remove(&document_id);
        }
    }

    /// A gossip message: the rules answer peers directly; heads we subscribed to go to the
    /// document's handle if it is in memory.
    async fn gossip_received(&mut self, message: &Message) {
        let Some(gossip) = &self.ctx.gossip else {
            debug!(
                kind = message.type_name(),
                "remote-heads gossip is off; ignored"
            );
            return;
        };
        for (document_id, storage_id, heads) in gossip.receive(message) {
            if let Some(handle) = self.documents.get(&document_id) {
                let _ = handle
                    .shared
                    .worker
                    .send(DocEvent::GossipedHeads(storage_id, heads))
                    .await;
            }
        }
    }

    async fn idle(&mut self, document_id: DocumentId) {
        let Some(handle) = self.documents.get(&document_id) else {
            return;
        };
        // One reference is ours, one the worker's: any other is a user's handle.
        if Arc::strong_count(&handle.shared) > 2 {
            return;
        }
        let Some(handle) = self.documents.remove(&document_id) else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        if handle.shared.worker.send(DocEvent::Stop(tx)).await.is_ok() {
            // The worker saves and reports `Unloaded`; until then a new worker for this id
            // waits on `rx` before reading storage.
            debug!(%document_id, "unloading idle document");
            self.unloading.insert(document_id, rx);
        }
    }

    async fn shutdown(&mut self) {
        let mut acks = Vec::new();
        for (_, handle) in self.documents.drain() {
            let (tx, rx) = oneshot::channel();
            if handle.shared.worker.send(DocEvent::Stop(tx)).await.is_ok() {
                acks.push(rx);
            }
        }
        for ack in acks {
            let _ = ack.await;
        }
        for (_, entry) in self.connections.drain() {
            entry.link.outbox.close();
        }
        self.peers.send_modify(|peers| peers.clear());
    }
}

/// Drains a connection's outbox into its sink; closes the sink when the outbox closes.
async fn write_connection(mut outbox: OutboxReceiver, mut sink: tandem_core::MessageSink) {
    while let Some(message) = outbox.recv().await {
        if let Err(error) = sink.send(message).await {
            debug!(%error, "connection write failed");
            break;
        }
    }
    let _ = sink.close().await;
}

/// Feeds a connection's messages to the hub until it ends or is closed.
async fn read_connection(
    id: ConnectionId,
    link: PeerLink,
    mut incoming: tandem_core::MessageStream,
    hub: mpsc::Sender<HubEvent>,
) {
    let closed = link.outbox.clone();
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            _ = closed.closed() => None,
        };
        match next {
            Some(Ok(message)) => {
                if hub.send(HubEvent::Incoming(id, message)).await.is_err() {
                    return;
                }
            }
            Some(Err(error)) => {
                warn!(peer = %link.peer_id, %error, "connection failed");
                break;
            }
            None => break,
        }
    }
    let _ = hub.send(HubEvent::Disconnected(id)).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use automerge::transaction::Transactable;
    use automerge::ROOT;
    use tandem_core::{ChunkKind, StorageAdapter};
    use tandem_storage_mem::MemoryStorage;

    use std::sync::{Arc, Mutex};

    use automerge::ReadDoc;
    use tandem_core::{DocumentId, StorageError, StorageKey};

    use super::{Command, HubEvent};
    use crate::network::memory;
    use crate::{AskOnly, Repo};

    const PATIENCE: Duration = Duration::from_secs(20);

    /// A server built from `server` and a plain client, linked in memory and connected.
    async fn server_and_client(server: crate::RepoBuilder) -> (Repo, Repo, memory::Link) {
        let (left, right, link) = memory::pair();
        let server = server.network(left).start().await.unwrap();
        let client = Repo::builder().network(right).start().await.unwrap();
        client
            .wait_for_peer(server.peer_id(), PATIENCE)
            .await
            .unwrap();
        (server, client, link)
    }

    /// How many (connection, document) introductions `repo`'s hub keeps.
    async fn introductions(repo: &Repo) -> usize {
        repo.command(|reply| Command::Introductions { reply })
            .await
            .unwrap()
    }

    /// A server that offers nothing (so it keeps introductions per connection) unloads the
    /// documents a client brought once they go idle, and forgets which connection introduced
    /// them: a client connected for days does not make the server keep every id it touched.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unloaded_documents_are_no_longer_introduced_to_anyone() {
        let storage = MemoryStorage::new();
        let (server, client, _link) = server_and_client(
            Repo::builder()
                .share_policy(AskOnly)
                .storage(storage.clone())
                .save_debounce(Duration::from_millis(5))
                .idle_timeout(Duration::from_millis(100)),
        )
        .await;

        let mut held = Vec::new();
        for i in 0..50 {
            let (doc, ()) = client
                .create_with(|tx| tx.put(ROOT, "n", i).unwrap())
                .await
                .unwrap();
            held.push(doc);
        }
        tokio::time::timeout(PATIENCE, async {
            // Every document reached the server's storage...
            for doc in &held {
                let prefix = ChunkKind::Snapshot.prefix(doc.document_id());
                while storage.load_range(&prefix).await.unwrap().is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await; // polling, not a guess
                }
            }
            // ...and left its memory, introductions and all.
            while !server.documents().await.unwrap().is_empty() || introductions(&server).await > 0
            {
                tokio::time::sleep(Duration::from_millis(10)).await; // polling, not a guess
            }
        })
        .await
        .unwrap_or_else(|_| panic!("introductions kept after unloading"));
        client.shutdown().await;
        server.shutdown().await;
    }

    /// A peer offered everything when it connected is known to every worker, and the hub keeps
    /// no introductions for it. When the policy withdraws that (`share_policy_changed`), the hub
    /// must count it as introduced everywhere, or its departure reaches no worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_no_longer_offered_everything_is_still_told_to_leave_everywhere() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let offered = Arc::new(AtomicBool::new(true));
        let policy = {
            let offered = offered.clone();
            crate::FnSharePolicy::new(move |_, _| offered.load(Ordering::SeqCst), |_, _| true)
        };
        let (server, client, link) = server_and_client(Repo::builder().share_policy(policy)).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(server.create_empty().await.unwrap());
        }
        assert_eq!(
            introductions(&server).await,
            0,
            "offered everything: nothing kept"
        );

        offered.store(false, Ordering::SeqCst);
        server.share_policy_changed().await.unwrap();
        assert_eq!(introductions(&server).await, held.len());

        link.cut();
        tokio::time::timeout(PATIENCE, async {
            while introductions(&server).await > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await; // polling, not a guess
            }
        })
        .await
        .expect("the departure was not recorded");
        client.shutdown().await;
        server.shutdown().await;
    }

    /// Memory storage whose saves wait while its gate is shut, and which notes every save and
    /// range load of a document, in order.
    #[derive(Clone)]
    struct GatedStorage {
        inner: MemoryStorage,
        open: Arc<tokio::sync::watch::Sender<bool>>,
        log: Arc<Mutex<Vec<&'static str>>>,
        /// How many snapshot range loads there have been.
        loads: Arc<tokio::sync::watch::Sender<usize>>,
    }

    impl GatedStorage {
        /// Empty, with the gate open.
        fn with_gate_open() -> Self {
            GatedStorage {
                inner: MemoryStorage::new(),
                open: Arc::new(tokio::sync::watch::channel(true).0),
                log: Arc::default(),
                loads: Arc::new(tokio::sync::watch::channel(0).0),
            }
        }

        fn note(&self, what: &'static str) {
            self.log.lock().unwrap().push(what);
        }
    }

    #[async_trait::async_trait]
    impl StorageAdapter for GatedStorage {
        async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
            self.inner.load(key).await
        }
        async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|open| *open).await;
            let result = self.inner.save(key, value).await;
            if key.parts().len() == 3 && key.parts()[1] != "sync-state" {
                self.note("save");
            }
            result
        }
        async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
            self.inner.remove(key).await
        }
        async fn load_range(
            &self,
            prefix: &StorageKey,
        ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
            if prefix.parts().len() == 2 && prefix.parts()[1] == "snapshot" {
                self.note("load");
                self.loads.send_modify(|n| *n += 1);
            }
            self.inner.load_range(prefix).await
        }
        async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
            self.inner.remove_range(prefix).await
        }
    }

    /// A save that never ends (a hung disk) makes every answer to the document's writers wait
    /// for it. Past a bound (small in unit tests) the writers are cut off, which bounds the
    /// server's memory; what they wrote stays, and a reader of another document goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_waiting_on_a_save_that_never_ends_are_cut_off_past_a_bound() {
        let storage = GatedStorage::with_gate_open();
        let (server, writer, _link) = server_and_client(
            Repo::builder()
                .storage(storage.clone())
                .durable_acknowledgement(true)
                .max_held(256)
                .save_debounce(Duration::from_millis(1)),
        )
        .await;
        let (left, right, _reader_link) = memory::pair();
        server.add_network(left).await.unwrap();
        let reader = Repo::builder().network(right).start().await.unwrap();
        reader
            .wait_for_peer(server.peer_id(), PATIENCE)
            .await
            .unwrap();
        let news = server.create_empty().await.unwrap();
        let news_at_reader = reader.find(news.url()).await.unwrap();
        let (written, ()) = writer
            .create_with(|tx| tx.put(ROOT, "n", 0).unwrap())
            .await
            .unwrap();
        let at_server = server.find(written.url()).await.unwrap();
        server.flush().await.unwrap();

        storage.open.send_replace(false);
        let mut peers = writer.peer_changes();
        let mut changes = Box::pin(at_server.changes());
        let mut last_received = 0;
        for n in 1..=2_000 {
            written.change(|tx| tx.put(ROOT, "n", n).unwrap()).unwrap();
            let target = written.heads().unwrap();
            let outcome = tokio::time::timeout(PATIENCE, async {
                tokio::select! {
                    _ = async {
                        while at_server.heads().unwrap() != target {
                            futures::StreamExt::next(&mut changes).await;
                        }
                    } => true,
                    _ = peers.wait_for(|peers| !peers.contains_key(server.peer_id())) => false,
                }
            })
            .await
            .expect("the server neither took the change nor cut the writer off");
            if !outcome {
                break;
            }
            last_received = n;
        }
        assert!(
            !writer.peers().contains_key(server.peer_id()),
            "the writer was never cut off"
        );
        assert!(last_received > 200, "cut off after {last_received} changes");
        let at_server_n = at_server
            .with_doc(|doc| doc.get(ROOT, "n").unwrap().unwrap().0.as_i64())
            .unwrap();
        assert!(at_server_n >= Some(last_received), "{at_server_n:?}");

        // The reader of another document is still served.
        news.change(|tx| tx.put(ROOT, "still", true).unwrap())
            .unwrap();
        let heads = news.heads().unwrap();
        let mut news_changes = Box::pin(news_at_reader.changes());
        tokio::time::timeout(PATIENCE, async {
            while news_at_reader.heads().unwrap() != heads {
                futures::StreamExt::next(&mut news_changes).await;
            }
        })
        .await
        .expect("the reader no longer hears from the server");

        // Once the disk answers, what the writer sent is saved.
        storage.open.send_replace(true);
        server.flush().await.unwrap();
        let loaded =
            tandem_core::persistence::load_from_storage(&storage.inner, written.document_id())
                .await
                .unwrap();
        let stored_n = loaded
            .document
            .unwrap()
            .get(ROOT, "n")
            .unwrap()
            .unwrap()
            .0
            .as_i64();
        assert_eq!(stored_n, at_server_n);
        reader.shutdown().await;
        writer.shutdown().await;
        server.shutdown().await;
    }

    /// A worker's `Unloaded` can reach the hub late, after a newer worker for the same document
    /// has itself begun to stop. It must not clear the newer worker's entry: the worker started
    /// next would read storage before the newer one's last save, and miss its last changes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_unloaded_does_not_let_the_next_worker_read_before_the_last_save() {
        let storage = GatedStorage::with_gate_open();
        let repo = Repo::builder()
            .storage(storage.clone())
            .save_debounce(Duration::from_millis(5))
            .idle_timeout(Duration::from_millis(50))
            .start()
            .await
            .unwrap();
        let unloaded = || async {
            tokio::time::timeout(PATIENCE, async {
                while !repo.documents().await.unwrap().is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await; // polling, not a guess
                }
            })
            .await
            .expect("the document never unloaded");
        };
        let id: DocumentId = {
            let (first, ()) = repo
                .create_with(|tx| tx.put(ROOT, "n", 1).unwrap())
                .await
                .unwrap();
            first.document_id().clone()
        };
        unloaded().await;

        // The second worker changes the document, then stops with its last save held up.
        {
            let second = repo.find(&id).await.unwrap();
            second.change(|tx| tx.put(ROOT, "n", 2).unwrap()).unwrap();
            storage.open.send_replace(false);
        }
        unloaded().await;
        // The first worker's `Unloaded`, late.
        repo.send_hub_event(HubEvent::Unloaded(id.clone())).await;

        // A third worker: it must wait for the second's save before it loads.
        let loads_before = *storage.loads.borrow();
        let third = repo.find_with_progress(&id).await.unwrap();
        // Give a wrong hub the chance to show itself (the third worker loading while the gate is
        // shut); a right one never loads here, and the wait ends with the timeout.
        let mut loads = storage.loads.subscribe();
        let loaded_early = tokio::time::timeout(
            Duration::from_millis(300),
            loads.wait_for(|n| *n > loads_before),
        )
        .await
        .is_ok();
        storage.open.send_replace(true);
        let mut states = third.states();
        tokio::time::timeout(
            PATIENCE,
            states.wait_for(|s| *s == tandem_core::sync::HandleState::Ready),
        )
        .await
        .expect("the third worker never became ready")
        .unwrap();
        let n = third
            .with_doc(|doc| doc.get(ROOT, "n").unwrap().unwrap().0.as_i64())
            .unwrap();
        assert!(
            !loaded_early,
            "the third worker read storage while the second was still saving"
        );
        assert_eq!(n, Some(2));
        let log = storage.log.lock().unwrap().clone();
        assert_eq!(log.last(), Some(&"load"), "{log:?}");
        drop(third);
        repo.shutdown().await;
    }
}
