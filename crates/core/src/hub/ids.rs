//! The hub actor's ids.

/// A connection the hub actor accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

/// One document actor: a document brought into memory once (found again after it unloaded, it
/// gets a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentActorId(pub(crate) u64);

/// A share-policy question the hub asked (`announce(peer, None)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HubQuestionId(pub(crate) u64);

impl std::fmt::Display for DocumentActorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "document-actor-{}", self.0)
    }
}
