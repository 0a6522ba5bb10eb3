//! What the hub actor asks its driver to do.

use super::{ConnectionId, DocumentActorId, HubQuestionId};
use crate::document::{CommandId, PeerInfo, Start};
use crate::{DocumentId, Message, PeerId, PeerMetadata};

/// What a document actor is told by the hub (the driver turns it into a
/// [`DocumentInput`](crate::document::DocumentInput), adding what only it has: command replies,
/// the connection's outbox).
#[derive(Debug)]
pub enum DocumentEvent {
    /// A peer the document may share with.
    PeerConnected {
        /// The peer.
        peer: PeerInfo,
        /// Its connection.
        connection: ConnectionId,
    },
    /// A peer left.
    PeerDisconnected(PeerId),
    /// A message for the document.
    Incoming {
        /// The connection it came on.
        connection: ConnectionId,
        /// The connection's peer.
        from: PeerId,
        /// What it said about itself.
        metadata: PeerMetadata,
        /// How far its connection's credentials let it sync the document.
        granted: crate::Access,
        /// The message.
        message: Message,
    },
    /// The application looks for the document.
    WantedLocally,
    /// Transports that connect out are making their first attempt: if nobody has the document,
    /// wait for them before it is unavailable.
    AwaitNetworks,
    /// Every transport that connects out has made its first attempt.
    NetworksSettled,
    /// The application looks for the document again: if it is unavailable, ask the peers
    /// again. Part of the find `command`, which is answered once this is done.
    RequestAgain(CommandId),
    /// Decide again for every connected peer.
    SharePolicyChanged {
        /// Every connected peer, with what the policy now says of it as a whole.
        peers: Vec<(PeerInfo, ConnectionId)>,
        /// The hub command this is part of.
        command: CommandId,
    },
    /// Save now.
    Flush(CommandId),
    /// Save and end: for a shutdown (its command), or an eviction (none).
    Stop(Option<CommandId>),
    /// Remove from storage and end.
    Delete(CommandId),
}

/// One thing for the driver to do, in the order given.
#[derive(Debug)]
pub enum HubEffect {
    /// The connection of [`Connect`](super::HubInput::Connect) `command` is accepted as
    /// `connection`.
    Accepted {
        /// The command.
        command: CommandId,
        /// Its id.
        connection: ConnectionId,
    },
    /// The connection of [`Connect`](super::HubInput::Connect) `command` is refused (the peer
    /// claims our own id).
    Refused(CommandId),
    /// Close a connection (its peer lied about its id, reconnected, or flooded).
    Close(ConnectionId),
    /// A connection's ephemeral message went over its rate and was dropped; with `cut_off`,
    /// so many were that the connection is closed (a [`Close`](Self::Close) follows). For
    /// metrics.
    EphemeralLimited {
        /// Whether the connection is closed for it.
        cut_off: bool,
    },
    /// Send a message on a connection.
    Send(ConnectionId, Message),
    /// Ask the share policy `announce(peer, None)`; answer with
    /// [`Answered`](super::HubInput::Answered).
    Ask {
        /// Named in the answer.
        question: HubQuestionId,
        /// About whom.
        peer: PeerId,
    },
    /// A peer is connected and its policy answer known (publish it; remote-heads gossip treats it
    /// as generous if `announce_any`).
    PeerJoined {
        /// Its connection.
        connection: ConnectionId,
        /// The peer.
        peer: PeerInfo,
    },
    /// A peer's connection is gone.
    PeerLeft(PeerId),
    /// Bring a document into memory with a new actor.
    Spawn {
        /// The new actor.
        actor: DocumentActorId,
        /// The document.
        document_id: DocumentId,
        /// How it starts.
        start: Start,
        /// The peers it may talk to at once.
        peers: Vec<(PeerInfo, ConnectionId)>,
        /// A previous actor of the document, still stopping: the new one reads storage only
        /// once that one has ended.
        after: Option<DocumentActorId>,
    },
    /// Tell a document actor something.
    Tell {
        /// Which.
        actor: DocumentActorId,
        /// What.
        event: DocumentEvent,
    },
    /// A remote-heads gossip message for the gossip rules.
    Gossip {
        /// The connection it came on.
        connection: ConnectionId,
        /// The message.
        message: Message,
    },
    /// A document left memory for good (or was deleted): forget its gossip.
    Forgotten(DocumentId),
    /// [`Find`](super::HubInput::Find) or [`Create`](super::HubInput::Create) `command`: the
    /// document's actor.
    Found {
        /// The command.
        command: CommandId,
        /// The actor.
        actor: DocumentActorId,
    },
    /// Every effect of `command` has been given (what was told to documents may still be
    /// under way).
    Completed(CommandId),
}
