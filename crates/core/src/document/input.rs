//! What the driver tells a document actor.

use super::{CommandId, QuestionId, ReadId, SaveId, SaveOutcome};
use crate::persistence::Loaded;
use automerge::Automerge;

use crate::{Message, MessageData, PeerId, PeerMetadata, StorageError};

/// A connected peer as a document sees it: who it is, what it said of itself, and whether the
/// share policy offers it anything unprompted (`announce(peer, None)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer.
    pub peer: PeerId,
    /// What it said about itself when it joined.
    pub metadata: PeerMetadata,
    /// Whether the policy offers it documents at all.
    pub announce_any: bool,
    /// How far its connection's credentials let it sync this document
    /// ([`Grant::access_to`](crate::Grant::access_to)): the policy's answer is narrowed to it.
    pub granted: crate::Access,
    /// It synced this document on its current connection before the document last left
    /// memory: it is synced again as though it had just asked.
    pub synced_before: bool,
    /// It is another node of this repo's cluster ([`Grant::cluster_node`](crate::Grant)): it is
    /// synced every document both hold in memory, and what it sends keeps nothing in memory.
    pub cluster_node: bool,
}

/// One event for a [`DocumentActor`](super::DocumentActor).
#[derive(Debug)]
pub enum DocumentInput {
    /// A peer connected, or the document came into memory while it was connected: share with it
    /// if the policy says so.
    PeerConnected(PeerInfo),
    /// A peer disconnected.
    PeerDisconnected(PeerId),
    /// A document message arrived over `from`'s connection (for ephemeral messages, the hop,
    /// which need not be the original sender).
    Incoming {
        /// The connection's peer.
        from: PeerId,
        /// What it said about itself when it joined.
        metadata: PeerMetadata,
        /// How far its connection's credentials let it sync this document.
        granted: crate::Access,
        /// The message.
        message: Message,
    },
    /// The application changed the document (one or more changes since the last input).
    LocalChange,
    /// The application broadcasts `data` (CBOR) to the document's peers, as ephemeral message
    /// number `count` of this repo's session.
    Broadcast {
        /// The value.
        data: MessageData,
        /// The repo's next ephemeral count.
        count: u64,
    },
    /// The application looks for the document: peers may be asked for it even if the policy
    /// offers them nothing.
    WantedLocally,
    /// Transports that connect out are making their first attempt: a document nobody has yet
    /// stays requested until [`NetworksSettled`](Self::NetworksSettled) (for a document already
    /// in memory; one loaded meanwhile starts so, [`Start::Load`](super::Start::Load)).
    AwaitNetworks,
    /// Every transport that connects out has made its first attempt: if nobody has the
    /// document, it is unavailable.
    NetworksSettled,
    /// The application merges another document's history into this one (`import_into`),
    /// applied as a peer's changes are ([`crate::untrusted`]). Answered with
    /// [`Imported`](super::DocumentEffect::Imported).
    Import {
        /// The document to merge in.
        document: Box<Automerge>,
        /// Its size in bytes: what merging it may cost.
        size: usize,
        /// Named in the answer.
        command: CommandId,
    },
    /// The application looks for the document again: if it is unavailable, ask again.
    /// Completed once the request is out.
    RequestAgain(CommandId),
    /// The share policy answers differently now: decide again, for each connected peer, whether
    /// to sync with it. Completed once every peer is decided.
    SharePolicyChanged {
        /// Every connected peer, with what the policy now says of it as a whole.
        peers: Vec<PeerInfo>,
        /// Completed when done.
        command: CommandId,
    },
    /// Save now; completed once the save that holds everything so far has landed (or failed).
    Flush(CommandId),
    /// Save, then end (shutdown or eviction).
    Stop(CommandId),
    /// Remove the document from storage and end.
    Delete(CommandId),
    /// Storage removed the document ([`RemoveDocument`](super::DocumentEffect::RemoveDocument)),
    /// or could not.
    Removed(Result<(), StorageError>),
    /// The answer to a share-policy question.
    Answered {
        /// The question.
        question: QuestionId,
        /// What the policy said.
        answer: super::ShareAnswer,
    },
    /// A stored sync state the actor asked for (`None`: none stored, or it could not be read).
    SyncStateLoaded {
        /// The read.
        read: ReadId,
        /// The encoded state.
        state: Option<Vec<u8>>,
    },
    /// Storage was read and merged into the document ([`Load`](super::DocumentEffect::Load)).
    Loaded(Loaded),
    /// A save ended.
    Saved {
        /// Which.
        save: SaveId,
        /// How it went.
        outcome: SaveOutcome,
    },
    /// The time the actor asked for ([`DocumentActor::next_timeout`](super::DocumentActor::next_timeout))
    /// has come.
    Timeout,
}

impl DocumentInput {
    /// Bytes of automerge data this input carries: what applying it may cost.
    pub fn weight(&self) -> usize {
        match self {
            DocumentInput::Incoming {
                message: Message::Sync(m) | Message::Request(m),
                ..
            } => m.data.as_bytes().len(),
            DocumentInput::Import { size, .. } => *size,
            _ => 0,
        }
    }
}
