//! What a repo's tasks and a document's handles share: the events they send one another, and
//! each document's state that its handles and its task both hold ([`HandleShared`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{Automerge, ChangeHash, Patch};
use tandem_core::document::{LoggedPatches, PeerInfo};
use tandem_core::hub::{ConnectionId, DocumentActorId, FindMode, HubQuestionId};
use tandem_core::sync::HandleState;
use tandem_core::{Access, Connection, DocumentId, Message, PeerId, RemoteHeads, StorageId};
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit};

use crate::event_fanout::EventFanout;
use crate::events::{DocumentChange, EphemeralEvent, RemoteHeadsEvent};
use crate::network::NetworkId;
use crate::outbox::PeerLink;
use crate::RepoError;

/// Queue depth of the hub's inbox: a full queue makes the sender (a connection reader, the
/// application) wait.
pub(crate) const QUEUE_DEPTH: usize = 1024;

pub(crate) enum HubEvent {
    Command(Command),
    /// A connection a transport opened.
    Connected(Connection, NetworkId),
    /// A transport that connects out started its first attempt to connect.
    FirstAttemptStarted(NetworkId),
    /// That attempt ended (after the hub got its connection, if it made one).
    FirstAttemptEnded(NetworkId),
    Incoming(ConnectionId, Message, InFlight),
    Disconnected(ConnectionId),
    /// The share policy's answer to `announce(peer, None)`.
    Answered(HubQuestionId, bool),
    /// A document's task found its document unheld and idle.
    Idle {
        /// Its actor.
        actor: DocumentActorId,
        /// Whether the document exists here (its peers are synced again when it reloads).
        available: bool,
    },
    /// A document's task ended (stopped or deleted).
    Ended(DocumentActorId),
    /// A document's task panicked; its handles are unavailable.
    TaskFailed(DocumentActorId),
    /// A document refused a peer's changes: the peer only reads it for the rest of its
    /// connection.
    WritesRefused {
        peer: PeerId,
        document_id: DocumentId,
    },
}

pub(crate) enum Command {
    Create {
        document_id: DocumentId,
        document: Box<Automerge>,
        reply: oneshot::Sender<Arc<HandleShared>>,
    },
    Find {
        document_id: DocumentId,
        mode: FindMode,
        reply: oneshot::Sender<Arc<HandleShared>>,
    },
    Delete {
        document_id: DocumentId,
        reply: oneshot::Sender<Result<(), RepoError>>,
    },
    /// Close every connection of a transport (which no longer opens new ones).
    RemoveNetwork {
        network: NetworkId,
        reply: oneshot::Sender<()>,
    },
    /// Out of memory now; answered once it is (at once if it was not in memory).
    Evict {
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
    /// The share policy answers differently now. Answered once every document has decided
    /// again.
    SharePolicyChanged {
        reply: oneshot::Sender<()>,
    },
    /// The other cluster nodes alive now: links of nodes not among them close.
    LiveNodes {
        nodes: BTreeSet<PeerId>,
        reply: oneshot::Sender<()>,
    },
}

/// A message's place in its connection's in-flight allowance; dropped once the document took
/// the message in.
pub(crate) type InFlight = OwnedSemaphorePermit;

/// What the hub and the handles tell a document's task.
pub(crate) enum DocEvent {
    /// A peer connected (or the document was found here while it was connected), as the hub
    /// actor describes it to the document.
    PeerConnected(PeerLink, PeerInfo),
    /// A peer disconnected.
    PeerDisconnected(PeerId),
    /// A document message from a peer (the hop it arrived on, which for ephemeral messages need
    /// not be the original sender). Boxed: a task's queue allocates room for 32 events at once,
    /// and this, the largest, would make that room 4.6 KiB for every loaded document.
    /// The message's in-flight permit, if any, is released once the task takes it in.
    Incoming(Box<(PeerLink, Message, Option<InFlight>, Access)>),
    /// `DocHandle::broadcast`: a CBOR value for the document's peers.
    Broadcast(Vec<u8>),
    /// Save now.
    Flush(oneshot::Sender<Result<(), RepoError>>),
    /// Remove the document from storage and end.
    Delete(oneshot::Sender<Result<(), RepoError>>),
    /// Save and end (shutdown or eviction).
    Stop(oneshot::Sender<()>),
    /// The application looks for this document.
    WantedLocally,
    /// Client transports are making their first attempt to connect.
    AwaitNetworks,
    /// Every client transport has made its first attempt to connect.
    NetworksSettled,
    /// `Repo::import_into`: merge this document in.
    Import {
        document: Box<Automerge>,
        size: usize,
        reply: oneshot::Sender<Result<(), RepoError>>,
    },
    /// The application looks for the document again. Answered once the request is out.
    RequestAgain(oneshot::Sender<()>),
    /// Gossip told us the heads a storage we subscribed to holds.
    GossipedHeads(StorageId, RemoteHeads),
    /// The share policy answers differently now: decide again for every connected peer.
    SharePolicyChanged {
        peers: Vec<(PeerLink, PeerInfo)>,
        done: oneshot::Sender<()>,
    },
}

/// A document task's inbox: futures' unbounded channel, a queue of linked nodes that costs
/// nothing until an event is in it. Tokio's allocates room for 32 events (3.3 KiB) when it is
/// made, which every loaded document kept.
pub(crate) type DocSender = futures::channel::mpsc::UnboundedSender<DocEvent>;
/// The receiving end of a [`DocSender`].
pub(crate) type DocInbox = futures::channel::mpsc::UnboundedReceiver<DocEvent>;

/// What a document's handles and its task share.
pub(crate) struct HandleShared {
    pub(crate) document_id: DocumentId,
    pub(crate) doc: Mutex<Automerge>,
    pub(crate) state: watch::Sender<HandleState>,
    /// While the state is `Requesting`: the peers asked (set before the state is published).
    pub(crate) requesting_from: Mutex<Vec<PeerId>>,
    /// Signalled after each local change; permits coalesce, so a burst is one wake-up.
    pub(crate) local_change: Notify,
    pub(crate) changes: EventFanout<DocumentChange>,
    pub(crate) ephemeral: EventFanout<EphemeralEvent>,
    pub(crate) remote_heads: Mutex<HashMap<StorageId, RemoteHeadsEvent>>,
    pub(crate) remote_heads_events: EventFanout<RemoteHeadsEvent>,
    pub(crate) worker: DocSender,
    /// Patches of local changes, logged as they were made while someone listened, for the
    /// worker's next change event (taken under the document's lock).
    pub(crate) local_patches: Mutex<Vec<LoggedPatches>>,
}

const EVENT_BUFFER: usize = 256;

impl HandleShared {
    pub(crate) fn new(
        document_id: DocumentId,
        doc: Automerge,
        state: HandleState,
        worker: DocSender,
    ) -> Self {
        HandleShared {
            document_id,
            doc: Mutex::new(doc),
            state: watch::channel(state).0,
            requesting_from: Mutex::new(Vec::new()),
            local_change: Notify::new(),
            changes: EventFanout::new(EVENT_BUFFER),
            ephemeral: EventFanout::new(EVENT_BUFFER),
            remote_heads: Mutex::new(HashMap::new()),
            remote_heads_events: EventFanout::new(EVENT_BUFFER),
            worker,
            local_patches: Mutex::new(Vec::new()),
        }
    }

    /// Notes a local change's patches (called with the document locked), for the document's
    /// actor, which takes them before its next step.
    pub(crate) fn log_local_patches(
        &self,
        from: Vec<ChangeHash>,
        to: Vec<ChangeHash>,
        patches: Vec<Patch>,
    ) {
        self.local_patches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(LoggedPatches { from, to, patches });
    }

    /// The document, even if a closure panicked while holding it (automerge rolls back an
    /// unfinished transaction when it is dropped, so the document is consistent).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Automerge> {
        self.doc
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
