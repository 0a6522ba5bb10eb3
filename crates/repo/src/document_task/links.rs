//! The outboxes of the peers a document task sends to, by peer id.
//!
//! A document has one or two peers as a rule (a client, a server): a vector searched in order
//! costs one small allocation, where a hash map allocated room for several entries and came to
//! 308 bytes per document.

use tandem_core::PeerId;

use crate::outbox::PeerLink;

/// At most one link per peer.
#[derive(Default)]
pub(super) struct Links(Vec<PeerLink>);

impl Links {
    /// The link to `peer`, if the task has one.
    pub(super) fn get(&self, peer: &PeerId) -> Option<&PeerLink> {
        self.0.iter().find(|link| link.peer_id == *peer)
    }

    /// Keeps `link`, in place of an older link to the same peer (a newer connection).
    pub(super) fn insert(&mut self, link: PeerLink) {
        match self.0.iter_mut().find(|l| l.peer_id == link.peer_id) {
            Some(old) => *old = link,
            None => self.0.push(link),
        }
    }

    /// Keeps `link` only if the task has none to that peer yet.
    pub(super) fn insert_if_absent(&mut self, link: PeerLink) {
        if self.get(&link.peer_id).is_none() {
            self.0.push(link);
        }
    }

    /// Forgets the link to `peer`.
    pub(super) fn remove(&mut self, peer: &PeerId) {
        self.0.retain(|link| link.peer_id != *peer);
    }

    /// Keeps the links to the peers `keep` says yes to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&PeerId) -> bool) {
        self.0.retain(|link| keep(&link.peer_id));
        if self.0.is_empty() {
            // A vector keeps its room once emptied: give it back.
            self.0 = Vec::new();
        }
    }
}
