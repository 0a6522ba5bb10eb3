//! What a repo and its handles report as it happens: documents coming and going, changes,
//! ephemeral messages, remote heads.

use std::sync::Arc;

use automerge::{ChangeHash, Patch};
use tandem_core::{DocumentId, PeerId, StorageId};

/// Where a change came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOrigin {
    /// A handle of this repo (`change`, `merge`, `import_into`).
    Local,
    /// A sync message from this peer.
    Peer(PeerId),
}

/// The document changed.
#[derive(Debug, Clone)]
pub struct DocumentChange {
    /// The heads after the change.
    pub heads: Vec<ChangeHash>,
    /// What changed, as automerge patches against the previous heads.
    pub patches: Arc<[Patch]>,
    /// Who made it.
    pub origin: ChangeOrigin,
}

/// An ephemeral message for the document.
#[derive(Debug, Clone)]
pub struct EphemeralEvent {
    /// The original sender (preserved across forwarding).
    pub sender_id: PeerId,
    /// The CBOR-encoded value; see [`decode`](EphemeralEvent::decode).
    pub data: Vec<u8>,
}

/// The heads a remote storage holds of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHeadsEvent {
    /// The remote storage.
    pub storage_id: StorageId,
    /// Its heads.
    pub heads: Vec<ChangeHash>,
    /// When they were learned, in milliseconds since the Unix epoch.
    pub timestamp: u64,
}

impl RemoteHeadsEvent {
    /// Heads as gossip carries them (Base58Check); `None` if one is not a change hash.
    pub(crate) fn from_gossip(
        storage_id: StorageId,
        remote: &tandem_core::RemoteHeads,
    ) -> Option<RemoteHeadsEvent> {
        let heads = remote
            .heads
            .iter()
            .map(ChangeHash::try_from)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(RemoteHeadsEvent {
            storage_id,
            heads,
            timestamp: remote.timestamp,
        })
    }
}

/// A document came into or left the repo's memory, or turned unavailable or deleted
/// ([`Repo::events`](crate::Repo::events)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoEvent {
    /// The repo holds the document now: created, imported, or being found (by the application
    /// or for a peer that asked). automerge-repo's `document` event.
    Added(DocumentId),
    /// Neither storage nor any peer has the document. automerge-repo's `unavailable-document`.
    Unavailable(DocumentId),
    /// The document was deleted. automerge-repo's `delete-document`.
    Deleted(DocumentId),
    /// The document left memory (idle, evicted, deleted or shut down); a later `find` loads it
    /// again.
    Unloaded(DocumentId),
}

/// How a find stands ([`Repo::find_with_progress`](crate::Repo::find_with_progress)), as
/// samod's search and automerge-repo's `findWithProgress` report it.
#[derive(Debug, Clone)]
pub enum FindProgress {
    /// Reading storage.
    Loading,
    /// Not in storage: asking these peers (those connected and allowed when the request went
    /// out).
    Requesting {
        /// The peers asked.
        peers: Vec<PeerId>,
    },
    /// Found, and ready (the last item).
    Ready(crate::DocHandle),
    /// Neither storage nor any peer has it (the last item). The handle turns ready should the
    /// document arrive later (a peer that has it connects and offers it).
    Unavailable(crate::DocHandle),
    /// It was deleted (the last item).
    Deleted,
}
