//! What a document actor asks its driver to do.

use automerge::{ChangeHash, Patch};

use super::{CommandId, QuestionId, ReadId, SaveId, SaveJob};
use crate::sync::HandleState;
use crate::untrusted::{OverQuota, UntrustedError};
use crate::{Message, PeerId, SessionId, StorageError, StorageId};

/// A share-policy question about this document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareQuestion {
    /// `announce(peer, Some(document))`: offer it unprompted?
    Announce,
    /// `access(peer, document)`: may the peer sync it, and which way?
    Access,
}

/// The share policy's answer to a [`ShareQuestion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareAnswer {
    /// To [`ShareQuestion::Announce`]: offer the document unprompted?
    Announce(bool),
    /// To [`ShareQuestion::Access`].
    Access(crate::Access),
}

/// The document changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    /// The peer whose sync message made the change; `None` for a local change.
    pub origin: Option<PeerId>,
    /// The heads before.
    pub before: Vec<ChangeHash>,
    /// The heads after.
    pub after: Vec<ChangeHash>,
    /// The patches from `before` to `after`, when they were logged as the change was made.
    /// Otherwise a driver with listeners computes them (`Automerge::diff`).
    pub patches: Option<Vec<Patch>>,
}

/// One thing for the driver to do, in the order given.
#[derive(Debug)]
pub enum DocumentEffect {
    /// Send a message to its `target_id`.
    Send(Message),
    /// Close the connection to this peer (it sent what automerge cannot take, or its answers
    /// wait on saves that never land).
    Disconnect(PeerId),
    /// Ask the share policy; answer with [`Answered`](super::DocumentInput::Answered). The actor
    /// holds back later inputs until then.
    Ask {
        /// Named in the answer.
        question: QuestionId,
        /// About whom.
        peer: PeerId,
        /// What.
        ask: ShareQuestion,
    },
    /// Read the sync state stored for this storage id; answer with
    /// [`SyncStateLoaded`](super::DocumentInput::SyncStateLoaded).
    LoadSyncState {
        /// Named in the answer.
        read: ReadId,
        /// Whose.
        storage_id: StorageId,
    },
    /// Read the document's chunks (if there is storage) and merge them into the document;
    /// answer with [`Loaded`](super::DocumentInput::Loaded). Feed what arrived meanwhile
    /// before the answer: a peer that asked while the document loaded is then answered as an
    /// asker (docs/protocol.md#request-or-sync), not asked in turn.
    Load,
    /// Perform a save beside the actor; answer with [`Saved`](super::DocumentInput::Saved). One
    /// runs at a time.
    Save {
        /// Named in the answer.
        save: SaveId,
        /// What to write.
        job: SaveJob,
    },
    /// Remove the document's chunks from storage (it was deleted); with `tombstone`, first
    /// store its tombstone ([`crate::storage::remove_document`]). Answer with
    /// [`Removed`](super::DocumentInput::Removed).
    RemoveDocument {
        /// Keep the document deleted for good.
        tombstone: bool,
    },
    /// The handle's state changed.
    State(HandleState),
    /// The document changed.
    Changed(Changed),
    /// A storage was learned to hold these heads.
    RemoteHeads {
        /// The storage.
        storage_id: StorageId,
        /// Its heads.
        heads: Vec<ChangeHash>,
    },
    /// An ephemeral value for the application.
    Ephemeral {
        /// The original sender.
        sender: PeerId,
        /// The sender's session.
        session_id: SessionId,
        /// Its count in that session.
        count: u64,
        /// The CBOR value.
        data: Vec<u8>,
    },
    /// A peer joined the document's sync set (remote-heads gossip wants to know).
    PeerOpened(PeerId),
    /// Nothing happened for the idle time, nothing waits on a save, and the document is
    /// settled: it may be unloaded if nobody holds it.
    Idle {
        /// Whether the document exists here (ready): the peers it was synced with are synced
        /// again when it is next loaded. An unavailable or deleted one leaves nothing behind.
        available: bool,
    },
    /// A save landed that made peers' changes durable, and so acknowledged: the oldest of them
    /// waited this long (for metrics).
    Acknowledged {
        /// From its arrival to its save landing.
        waited: std::time::Duration,
    },
    /// A command is done.
    Completed {
        /// Which.
        command: CommandId,
        /// For saves: whether they landed.
        result: Result<(), StorageError>,
    },
    /// An [`Import`](super::DocumentInput::Import) is done: merged and announced, or refused
    /// (the document is as it was).
    Imported {
        /// Which.
        command: CommandId,
        /// Whether it was merged.
        result: Result<(), UntrustedError>,
    },
    /// A peer's changes were refused for crossing the quota (for metrics; the actor logged it).
    Refused {
        /// Who sent them.
        peer: PeerId,
        /// Which bound they crossed.
        over: OverQuota,
    },
    /// The actor is done (stopped or deleted); nothing more comes of it.
    Stopped,
}
