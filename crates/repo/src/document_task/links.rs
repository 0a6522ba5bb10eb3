//! The outboxes of the peers a document task sends to, by peer id.
//!
//! A document has one or two peers as a rule (a client, a server): a vector sorted by peer id
//! costs one small allocation, where a hash map allocated room for several entries and came to
//! 308 bytes per document; a document shared with many peers still finds each link by binary
//! search, as every message it sends or receives does.

use tandem_core::PeerId;

use crate::outbox::PeerLink;

/// At most one link per peer.
#[derive(Default)]
pub(super) struct Links(Vec<PeerLink>);

impl Links {
    fn find(&self, peer: &PeerId) -> Result<usize, usize> {
        self.0.binary_search_by(|link| link.peer_id.cmp(peer))
    }

    /// The link to `peer`, if the task has one.
    pub(super) fn get(&self, peer: &PeerId) -> Option<&PeerLink> {
        self.find(peer).ok().map(|i| &self.0[i])
    }

    /// Keeps `link`, in place of an older link to the same peer (a newer connection).
    pub(super) fn insert(&mut self, link: PeerLink) {
        match self.find(&link.peer_id) {
            Ok(i) => self.0[i] = link,
            Err(i) => self.0.insert(i, link),
        }
    }

    /// Keeps `link` only if the task has none to that peer yet.
    pub(super) fn insert_if_absent(&mut self, link: PeerLink) {
        if let Err(i) = self.find(&link.peer_id) {
            self.0.insert(i, link);
        }
    }

    /// Forgets the link to `peer`.
    pub(super) fn remove(&mut self, peer: &PeerId) {
        self.retain(|p| p != peer);
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

#[cfg(test)]
mod tests {
    use tandem_core::{PeerId, PeerMetadata, StorageId};

    use super::Links;
    use crate::outbox::{outbox, PeerLink};

    /// A link to `peer`, told apart from other links to it by `mark` (as its storage id).
    fn link(peer: &str, mark: usize) -> PeerLink {
        PeerLink {
            peer_id: PeerId::from(peer),
            metadata: PeerMetadata {
                storage_id: Some(StorageId::from(mark.to_string())),
                is_ephemeral: false,
            },
            outbox: outbox(usize::MAX, None).0,
        }
    }

    fn peers(links: &Links) -> Vec<&str> {
        links.0.iter().map(|l| l.peer_id.as_str()).collect()
    }

    #[test]
    fn one_link_per_peer_found_by_peer_id() {
        let mut links = Links::default();
        for (peer, mark) in [("c", 1), ("a", 2), ("b", 3)] {
            links.insert(link(peer, mark));
        }
        assert_eq!(peers(&links), ["a", "b", "c"]);
        let mark = |links: &Links, peer: &str| {
            links
                .get(&PeerId::from(peer))
                .and_then(|l| l.metadata.storage_id.as_ref())
                .map(|id| id.as_str().to_owned())
        };
        assert_eq!(mark(&links, "b").as_deref(), Some("3"));
        assert_eq!(mark(&links, "d"), None);

        links.insert(link("b", 30));
        let newer = mark(&links, "b");
        assert_eq!(
            newer.as_deref(),
            Some("30"),
            "a newer link replaces the older"
        );
        links.insert_if_absent(link("b", 300));
        let kept = mark(&links, "b");
        assert_eq!(kept.as_deref(), Some("30"), "an existing link stays");
        links.insert_if_absent(link("ab", 4));
        assert_eq!(peers(&links), ["a", "ab", "b", "c"]);

        links.remove(&PeerId::from("ab"));
        links.retain(|peer| peer.as_str() != "c");
        assert_eq!(peers(&links), ["a", "b"]);
        links.remove(&PeerId::from("a"));
        links.remove(&PeerId::from("b"));
        assert_eq!(links.0.capacity(), 0, "emptied links keep no room");
    }
}
