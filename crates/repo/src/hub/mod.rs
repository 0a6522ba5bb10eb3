//! The repo's central task: the driver of the [`HubActor`].
//!
//! It decides nothing. It feeds the actor what the connections, the document tasks and the
//! application send, and performs what comes back: it starts document tasks and passes them
//! their events, opens and closes connections' IO, asks the share policy (on a task of its own,
//! so the hub never waits for it), answers the application. It never waits for a document's
//! queue: document inboxes are unbounded, and what a peer can put in them is bounded by its
//! connection's in-flight allowance ([`crate::connection_io`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use automerge::Automerge;
use futures::future::BoxFuture;
use futures::FutureExt;
use tandem_core::document::{CommandId, PeerInfo, Start};
use tandem_core::hub::{
    ConnectionId, DocumentActorId, DocumentEvent, HubActor, HubEffect, HubInput,
};
use tandem_core::sync::HandleState;
use tandem_core::{Connection, DocumentId, Message, PeerId, PeerMetadata};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::debug;

use crate::channels::{Command, DocEvent, HandleShared, HubEvent, InFlight};
use crate::connection_io::{read_connection, write_connection};
use crate::context::RepoContext;
use crate::document_task::{self, Begin};
use crate::events::RemoteHeadsEvent;
use crate::network::NetworkId;
use crate::outbox::{outbox, PeerLink};
use crate::pending::Pending;
use crate::{PeerLimit, RepoError, RepoEvent};

/// Who waits for a hub command.
enum Reply {
    Handle(oneshot::Sender<Arc<HandleShared>>),
    Delete(oneshot::Sender<Result<(), RepoError>>),
    /// Answered once every document told has answered.
    Joined(oneshot::Sender<Result<(), RepoError>>),
    Unit(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct Hub {
    ctx: Arc<RepoContext>,
    inbox: mpsc::Receiver<HubEvent>,
    me: mpsc::WeakSender<HubEvent>,
    actor: HubActor,
    /// Each document task's handle.
    documents: HashMap<DocumentActorId, Arc<HandleShared>>,
    links: HashMap<ConnectionId, PeerLink>,
    /// Connections waiting for the actor's verdict, with the transport that opened each.
    joining: Pending<(Connection, NetworkId)>,
    /// The transport of each open connection.
    networks: HashMap<ConnectionId, NetworkId>,
    /// Transports removed: a connection of theirs still joining closes once accepted.
    removed_networks: HashSet<NetworkId>,
    /// Client transports still making their first attempt to connect.
    settling: HashSet<NetworkId>,
    replies: Pending<Reply>,
    /// The answers of the documents a command told, to wait for together.
    joins: HashMap<CommandId, Vec<BoxFuture<'static, Result<(), RepoError>>>>,
    /// Evicted documents' tasks, until they end: the next task of the document waits for them.
    stopping: HashMap<DocumentActorId, oneshot::Receiver<()>>,
    /// Who waits for `Repo::evict` of a document's task, until it ends.
    evicting: HashMap<DocumentActorId, Vec<oneshot::Sender<()>>>,
    /// The document of the `Create` being fed.
    creating: Option<Automerge>,
    /// The in-flight permit of the message being fed.
    in_flight: Option<InFlight>,
    peers: watch::Sender<BTreeMap<PeerId, PeerMetadata>>,
    stopped: bool,
}

impl Hub {
    pub(crate) fn new(
        ctx: Arc<RepoContext>,
        inbox: mpsc::Receiver<HubEvent>,
        me: mpsc::WeakSender<HubEvent>,
        peers: watch::Sender<BTreeMap<PeerId, PeerMetadata>>,
    ) -> Hub {
        Hub {
            actor: HubActor::new(ctx.peer_id.clone(), ctx.denylist.clone())
                .with_ephemeral_rate(ctx.ephemeral_rate),
            ctx,
            inbox,
            me,
            documents: HashMap::new(),
            links: HashMap::new(),
            joining: Pending::new(),
            replies: Pending::new(),
            joins: HashMap::new(),
            stopping: HashMap::new(),
            evicting: HashMap::new(),
            networks: HashMap::new(),
            removed_networks: HashSet::new(),
            settling: HashSet::new(),
            creating: None,
            in_flight: None,
            peers,
            stopped: false,
        }
    }

    pub(crate) async fn run(mut self) {
        while let Some(event) = self.inbox.recv().await {
            let input = self.input(event);
            if let Some(input) = input {
                let effects = self.actor.handle(Instant::now().into_std(), input);
                for effect in effects {
                    self.perform(effect).await;
                }
            }
            self.in_flight = None;
            if self.stopped {
                return;
            }
        }
    }

    fn command(&mut self, reply: Reply) -> CommandId {
        self.replies.insert(reply)
    }

    /// The actor's input for an event, if it has one.
    fn input(&mut self, event: HubEvent) -> Option<HubInput> {
        Some(match event {
            HubEvent::Command(command) => return self.command_input(command),
            HubEvent::FirstAttemptStarted(network) => {
                if !self.removed_networks.contains(&network) {
                    self.settling.insert(network);
                }
                HubInput::NetworksSettling(!self.settling.is_empty())
            }
            HubEvent::FirstAttemptEnded(network) => {
                self.settling.remove(&network);
                HubInput::NetworksSettling(!self.settling.is_empty())
            }
            HubEvent::Connected(connection, network) => {
                let peer = connection.remote.peer_id.clone();
                let metadata = connection.remote.metadata.clone();
                let grant = connection.grant.clone();
                HubInput::Connect {
                    command: self.joining.insert((connection, network)),
                    peer,
                    metadata,
                    grant,
                }
            }
            HubEvent::Incoming(connection, message, permit) => {
                self.in_flight = Some(permit);
                HubInput::Incoming {
                    connection,
                    message,
                }
            }
            HubEvent::Disconnected(connection) => {
                self.networks.remove(&connection);
                HubInput::Disconnected(connection)
            }
            HubEvent::Answered(question, allowed) => HubInput::Answered { question, allowed },
            HubEvent::Idle { actor, available } => {
                // One reference is ours, one the task's: any other is a user's handle.
                let held = self
                    .documents
                    .get(&actor)
                    .map_or(true, |shared| Arc::strong_count(shared) > 2);
                if held {
                    return None;
                }
                HubInput::DocumentIdle { actor, available }
            }
            HubEvent::Ended(actor) => {
                self.unloaded(actor);
                self.stopping.remove(&actor);
                HubInput::DocumentStopped(actor)
            }
            HubEvent::TaskFailed(actor) => {
                self.unloaded(actor);
                HubInput::DocumentFailed(actor)
            }
            HubEvent::WritesRefused { peer, document_id } => {
                HubInput::WritesRefused { peer, document_id }
            }
        })
    }

    /// A document's task ended: its handle leaves the hub's table.
    fn unloaded(&mut self, actor: DocumentActorId) {
        if let Some(shared) = self.documents.remove(&actor) {
            let unloaded = RepoEvent::Unloaded(shared.document_id.clone());
            self.ctx.events.send(unloaded);
        }
        for reply in self.evicting.remove(&actor).unwrap_or_default() {
            let _ = reply.send(());
        }
    }

    fn command_input(&mut self, command: Command) -> Option<HubInput> {
        Some(match command {
            Command::Create {
                document_id,
                document,
                reply,
            } => {
                self.creating = Some(*document);
                HubInput::Create {
                    command: self.command(Reply::Handle(reply)),
                    document_id,
                }
            }
            Command::Find {
                document_id,
                mode,
                reply,
            } => HubInput::Find {
                command: self.command(Reply::Handle(reply)),
                document_id,
                mode,
            },
            Command::Delete { document_id, reply } => HubInput::Delete {
                command: self.command(Reply::Delete(reply)),
                document_id,
            },
            Command::Evict { document_id, reply } => match self.actor.actor_of(&document_id) {
                Some(actor) => {
                    self.evicting.entry(actor).or_default().push(reply);
                    HubInput::Evict(document_id)
                }
                None => {
                    let _ = reply.send(());
                    return None;
                }
            },
            Command::Flush { documents, reply } => HubInput::Flush {
                command: self.command(Reply::Joined(reply)),
                documents,
            },
            Command::Shutdown { reply } => HubInput::Shutdown {
                command: self.command(Reply::Shutdown(reply)),
            },
            Command::SharePolicyChanged { reply } => HubInput::SharePolicyChanged {
                command: self.command(Reply::Unit(reply)),
            },
            Command::LiveNodes { nodes, reply } => HubInput::LiveNodes {
                nodes,
                command: self.command(Reply::Unit(reply)),
            },
            Command::RemoveNetwork { network, reply } => {
                self.removed_networks.insert(network);
                for (connection, _) in self.networks.iter().filter(|(_, n)| **n == network) {
                    if let Some(link) = self.links.get(connection) {
                        link.outbox.close();
                    }
                }
                let _ = reply.send(());
                // A client removed before its first attempt no longer holds finds back.
                if !self.settling.remove(&network) {
                    return None;
                }
                HubInput::NetworksSettling(!self.settling.is_empty())
            }
            Command::Documents { reply } => {
                let _ = reply.send(self.actor.documents().map(|(id, _)| id.clone()).collect());
                return None;
            }
        })
    }

    async fn perform(&mut self, effect: HubEffect) {
        match effect {
            HubEffect::Accepted {
                command,
                connection,
            } => self.open(command, connection),
            HubEffect::Refused(command) => {
                self.joining.take(command);
            }
            HubEffect::EphemeralLimited { cut_off } => {
                if let Some(observer) = &self.ctx.observer {
                    observer.peer_limited(if cut_off {
                        PeerLimit::EphemeralFloodCutOff
                    } else {
                        PeerLimit::EphemeralDropped
                    });
                }
            }
            HubEffect::Close(connection) => {
                if let Some(link) = self.links.get(&connection) {
                    link.outbox.close();
                }
            }
            HubEffect::Send(connection, message) => {
                if let Some(link) = self.links.get(&connection) {
                    link.outbox.send(message);
                }
            }
            HubEffect::Ask { question, peer } => {
                // On a task of its own: a slow policy holds up nobody's messages.
                let policy = self.ctx.policy.clone();
                let hub = self.me.clone();
                tokio::spawn(async move {
                    let allowed = policy.announce(&peer, None).await;
                    if let Some(hub) = hub.upgrade() {
                        let _ = hub.send(HubEvent::Answered(question, allowed)).await;
                    }
                });
            }
            HubEffect::PeerJoined { connection, peer } => {
                if let (Some(gossip), Some(link)) = (&self.ctx.gossip, self.links.get(&connection))
                {
                    gossip.peer_connected(link.clone(), peer.announce_any);
                }
                self.peers.send_modify(|peers| {
                    peers.insert(peer.peer, peer.metadata);
                });
            }
            HubEffect::PeerLeft(peer) => {
                if let Some(gossip) = &self.ctx.gossip {
                    gossip.peer_disconnected(&peer);
                }
                self.peers.send_modify(|peers| {
                    peers.remove(&peer);
                });
            }
            HubEffect::Spawn {
                actor,
                document_id,
                start,
                peers,
                after,
            } => self.spawn(actor, document_id, start, peers, after),
            HubEffect::Tell { actor, event } => self.tell(actor, event),
            HubEffect::Gossip {
                connection: _,
                message,
            } => self.gossip(&message),
            HubEffect::Forgotten(document_id) => {
                if let Some(gossip) = &self.ctx.gossip {
                    gossip.forget_document(&document_id);
                }
            }
            HubEffect::Found { command, actor } => {
                if let (Some(Reply::Handle(reply)), Some(shared)) =
                    (self.replies.take(command), self.documents.get(&actor))
                {
                    // A find that asked the peers again answers once the request is out.
                    let asked = self.joins.remove(&command).unwrap_or_default();
                    let shared = shared.clone();
                    if asked.is_empty() {
                        let _ = reply.send(shared);
                    } else {
                        tokio::spawn(async move {
                            futures::future::join_all(asked).await;
                            let _ = reply.send(shared);
                        });
                    }
                }
            }
            HubEffect::Completed(command) => self.completed(command).await,
        }
    }

    /// Starts a connection's IO under the id the actor gave it.
    fn open(&mut self, command: CommandId, connection: ConnectionId) {
        let Some((
            Connection {
                remote,
                outgoing,
                incoming,
                ..
            },
            network,
        )) = self.joining.take(command)
        else {
            return;
        };
        self.networks.insert(connection, network);
        let (outbox, outbox_rx) = outbox(self.ctx.max_outbound_bytes, self.ctx.observer.clone());
        if self.removed_networks.contains(&network) {
            // Accepted after its transport was removed: it closes at once.
            outbox.close();
        }
        let link = PeerLink {
            peer_id: remote.peer_id,
            metadata: remote.metadata,
            outbox,
        };
        tokio::spawn(write_connection(outbox_rx, outgoing));
        if let Some(hub) = self.me.upgrade() {
            tokio::spawn(read_connection(connection, link.clone(), incoming, hub));
        }
        self.links.insert(connection, link);
    }

    fn spawn(
        &mut self,
        actor: DocumentActorId,
        document_id: DocumentId,
        start: Start,
        peers: Vec<(PeerInfo, ConnectionId)>,
        after: Option<DocumentActorId>,
    ) {
        self.ctx.events.send(RepoEvent::Added(document_id.clone()));
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (document, state, begin) = match start {
            Start::Created => (
                self.creating.take().unwrap_or_default(),
                HandleState::Ready,
                Begin::Created,
            ),
            Start::Load {
                wanted_locally,
                networks_settling,
            } => (
                Automerge::new(),
                HandleState::Loading,
                Begin::Load {
                    after: after.and_then(|after| self.stopping.remove(&after)),
                    wanted_locally,
                    networks_settling,
                },
            ),
        };
        let shared = Arc::new(HandleShared::new(document_id.clone(), document, state, tx));
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
        let peers = peers
            .into_iter()
            .filter_map(|(peer, connection)| Some((self.links.get(&connection)?.clone(), peer)))
            .collect();
        document_task::spawn(
            actor,
            shared.clone(),
            self.ctx.clone(),
            self.me.clone(),
            rx,
            begin,
            peers,
        );
        self.documents.insert(actor, shared);
    }

    /// Passes an event to a document's task, with what only the driver has: outboxes, replies.
    fn tell(&mut self, actor: DocumentActorId, event: DocumentEvent) {
        let Some(worker) = self.documents.get(&actor).map(|s| s.worker.clone()) else {
            debug!(%actor, "event for a document task that is gone; dropped");
            return;
        };
        let link =
            |links: &HashMap<ConnectionId, PeerLink>, connection| links.get(&connection).cloned();
        let event = match event {
            DocumentEvent::PeerConnected { peer, connection } => {
                let Some(link) = link(&self.links, connection) else {
                    return;
                };
                DocEvent::PeerConnected(link, peer)
            }
            DocumentEvent::PeerDisconnected(peer) => DocEvent::PeerDisconnected(peer),
            DocumentEvent::Incoming {
                connection,
                message,
                granted,
                ..
            } => {
                let Some(link) = link(&self.links, connection) else {
                    return;
                };
                let in_flight = self.in_flight.take();
                DocEvent::Incoming(Box::new((link, message, in_flight, granted)))
            }
            DocumentEvent::WantedLocally => DocEvent::WantedLocally,
            DocumentEvent::AwaitNetworks => DocEvent::AwaitNetworks,
            DocumentEvent::NetworksSettled => DocEvent::NetworksSettled,
            DocumentEvent::RequestAgain(command) => {
                let (done, answer) = oneshot::channel();
                self.join(command, answer.map(|_| Ok(())).boxed());
                DocEvent::RequestAgain(done)
            }
            DocumentEvent::SharePolicyChanged { peers, command } => {
                let peers = peers
                    .into_iter()
                    .filter_map(|(peer, connection)| Some((link(&self.links, connection)?, peer)))
                    .collect();
                let (done, answer) = oneshot::channel();
                self.join(command, answer.map(|_| Ok(())).boxed());
                DocEvent::SharePolicyChanged { peers, done }
            }
            DocumentEvent::Flush(command) => {
                let (reply, answer) = oneshot::channel();
                self.join(
                    command,
                    answer.map(|result| result.unwrap_or(Ok(()))).boxed(),
                );
                DocEvent::Flush(reply)
            }
            DocumentEvent::Stop(command) => {
                let (reply, answer) = oneshot::channel();
                match command {
                    Some(command) => self.join(command, answer.map(|_| Ok(())).boxed()),
                    None => {
                        self.stopping.insert(actor, answer);
                    }
                }
                DocEvent::Stop(reply)
            }
            DocumentEvent::Delete(command) => match self.replies.take(command) {
                Some(Reply::Delete(reply)) => DocEvent::Delete(reply),
                _ => DocEvent::Delete(oneshot::channel().0),
            },
        };
        if worker.unbounded_send(event).is_err() {
            debug!(%actor, "document task gone; event dropped");
        }
    }

    fn join(&mut self, command: CommandId, answer: BoxFuture<'static, Result<(), RepoError>>) {
        self.joins.entry(command).or_default().push(answer);
    }

    async fn completed(&mut self, command: CommandId) {
        let answers = self.joins.remove(&command).unwrap_or_default();
        let all = async move {
            let mut result = Ok(());
            for answer in answers {
                if let Err(error) = answer.await {
                    if result.is_ok() {
                        result = Err(error);
                    }
                }
            }
            result
        };
        match self.replies.take(command) {
            Some(Reply::Joined(reply)) => {
                // Waiting is the caller's business, not the hub's.
                tokio::spawn(async move {
                    let _ = reply.send(all.await);
                });
            }
            Some(Reply::Unit(reply)) => {
                tokio::spawn(async move {
                    let _ = all.await;
                    let _ = reply.send(());
                });
            }
            Some(Reply::Shutdown(reply)) => {
                let _ = all.await;
                for (_, link) in self.links.drain() {
                    link.outbox.close();
                }
                self.peers.send_modify(|peers| peers.clear());
                self.stopped = true;
                let _ = reply.send(());
            }
            Some(other) => {
                self.replies.restore(command, other);
            }
            None => {}
        }
    }

    /// A gossip message: the rules answer peers directly; heads we subscribed to go to the
    /// document's handle if it is in memory.
    fn gossip(&mut self, message: &Message) {
        let Some(gossip) = &self.ctx.gossip else {
            debug!(
                kind = message.type_name(),
                "remote-heads gossip is off; ignored"
            );
            return;
        };
        for (document_id, storage_id, heads) in gossip.receive(message) {
            let handle = self
                .actor
                .actor_of(&document_id)
                .and_then(|actor| self.documents.get(&actor));
            if let Some(shared) = handle {
                let _ = shared
                    .worker
                    .unbounded_send(DocEvent::GossipedHeads(storage_id, heads));
            }
        }
    }
}
