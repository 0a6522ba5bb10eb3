//! What the driver tells the hub actor.

use std::collections::BTreeSet;

use super::{ConnectionId, DocumentActorId, HubQuestionId};
use crate::document::CommandId;
use crate::{DocumentId, Grant, Message, PeerId, PeerMetadata};

/// One event for the [`HubActor`](super::HubActor).
#[derive(Debug)]
pub enum HubInput {
    /// A transport joined a peer. Answered with
    /// [`Accepted`](super::HubEffect::Accepted) or [`Refused`](super::HubEffect::Refused).
    Connect {
        /// Named in the answer.
        command: CommandId,
        /// Who.
        peer: PeerId,
        /// What it said about itself.
        metadata: PeerMetadata,
        /// What its credentials allow.
        grant: Grant,
    },
    /// A message arrived on a connection.
    Incoming {
        /// The connection.
        connection: ConnectionId,
        /// The message.
        message: Message,
    },
    /// A connection ended.
    Disconnected(ConnectionId),
    /// The answer to `announce(peer, None)`.
    Answered {
        /// The question.
        question: HubQuestionId,
        /// What the policy said.
        allowed: bool,
    },
    /// The application creates (or imports) a document: a new actor, ready at once. Answered
    /// with [`Found`](super::HubEffect::Found).
    Create {
        /// Named in the answer.
        command: CommandId,
        /// The new document's id.
        document_id: DocumentId,
    },
    /// The application looks for a document. Answered with [`Found`](super::HubEffect::Found).
    Find {
        /// Named in the answer.
        command: CommandId,
        /// Which.
        document_id: DocumentId,
        /// What the find is for.
        mode: FindMode,
    },
    /// The application deletes a document; its actor is told
    /// [`Delete`](super::DocumentEvent::Delete) with this command.
    Delete {
        /// Named in the document's completion.
        command: CommandId,
        /// Which.
        document_id: DocumentId,
    },
    /// The application saves documents now (`None`: all in memory). Each is told
    /// [`Flush`](super::DocumentEvent::Flush), then [`Completed`](super::HubEffect::Completed).
    Flush {
        /// Named in the effects.
        command: CommandId,
        /// Which.
        documents: Option<Vec<DocumentId>>,
    },
    /// The share policy answers differently now: every peer is asked `announce(peer, None)`
    /// again, then every document decides again. Ends with
    /// [`Completed`](super::HubEffect::Completed).
    SharePolicyChanged {
        /// Named in the effects.
        command: CommandId,
    },
    /// The other cluster nodes alive now, by the cluster's registry. A link admitted as a
    /// node ([`Grant::cluster_node`]) whose peer is not among them is closed (a
    /// [`Close`](super::HubEffect::Close) after its `PeerLeft`), whichever node dialled:
    /// a node that stopped saying it is alive is dropped by every other, and its links are
    /// refused until a report lists it again. Links made since the previous report are spared
    /// once, as their node may have registered after this registry was read. Completed once
    /// the links are closed.
    LiveNodes {
        /// The nodes the registry lists.
        nodes: BTreeSet<PeerId>,
        /// Named in the effects.
        command: CommandId,
    },
    /// Whether transports that connect out (clients) are still making their first attempt. A
    /// document looked for meanwhile that nobody has yet is not unavailable until they have:
    /// the peer that has it may be about to join. The driver says `true` when it starts such
    /// a transport and `false` once none is left making its first attempt.
    NetworksSettling(bool),
    /// The repo stops: every document is told to stop, then
    /// [`Completed`](super::HubEffect::Completed).
    Shutdown {
        /// Named in the effects.
        command: CommandId,
    },
    /// A document's actor has been idle for its idle time and nobody holds its handle.
    DocumentIdle {
        /// The actor.
        actor: DocumentActorId,
        /// Whether the document exists (`DocumentEffect::Idle`): its peers are then
        /// remembered, and synced again when it is next loaded.
        available: bool,
    },
    /// The application takes a document out of memory now (saved first), held or not
    /// (automerge-repo's `removeFromCache`). As for an idle one, a later find loads it again.
    Evict(DocumentId),
    /// A document's actor ended (stopped after an eviction, or deleted).
    DocumentStopped(DocumentActorId),
    /// A document's actor failed (its task panicked): it is gone.
    DocumentFailed(DocumentActorId),
    /// A document's actor refused a peer's changes
    /// ([`DocumentEffect::Refused`](crate::document::DocumentEffect::Refused)): for the rest of
    /// its connection the peer only reads that document, whichever actor holds it.
    WritesRefused {
        /// The peer.
        peer: PeerId,
        /// The document.
        document_id: DocumentId,
    },
}

/// What a [`Find`](HubInput::Find) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindMode {
    /// The application wants the document: any peer may be asked for it.
    Wanted {
        /// Ask the peers again if the document is unavailable (a `find` that waits for the
        /// document, rather than one that only wants its handle).
        again: bool,
    },
    /// Only what this repo holds, in memory or in storage: no peer is asked, and a document
    /// loaded for it that storage lacks leaves memory at once.
    Stored,
}
