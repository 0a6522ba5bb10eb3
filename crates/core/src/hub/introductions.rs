//! Which documents each peer has been introduced to on its current connection, kept by the hub
//! actor for peers the share policy does not offer everything: a peer's departure is told only
//! to the documents that know it, and a document that comes back into memory is synced again
//! with the peers that knew it. A document that turns out not to exist, or is deleted, is
//! forgotten by every peer that knew it. Both ways are
//! indexed, so neither event scans all peers or all documents. Hashed (an introduction is noted
//! for every message from such a peer); what a departure returns is sorted, so that the effects
//! that follow come out in the same order in every run.

use std::collections::{HashMap, HashSet};

use crate::{DocumentId, PeerId};

/// Peer ↔ document introductions, both ways.
#[derive(Debug, Default)]
pub(crate) struct Introductions {
    by_peer: HashMap<PeerId, HashSet<DocumentId>>,
    by_document: HashMap<DocumentId, HashSet<PeerId>>,
}

impl Introductions {
    /// `peer` now knows `document`'s actor (it wrote about it, or was asked for it).
    pub(crate) fn introduce(&mut self, peer: &PeerId, document: &DocumentId) {
        self.by_peer
            .entry(peer.clone())
            .or_default()
            .insert(document.clone());
        self.by_document
            .entry(document.clone())
            .or_default()
            .insert(peer.clone());
    }

    /// `peer` left: the documents whose actors knew it, in order.
    pub(crate) fn peer_left(&mut self, peer: &PeerId) -> Vec<DocumentId> {
        let mut documents: Vec<DocumentId> = self
            .by_peer
            .remove(peer)
            .unwrap_or_default()
            .into_iter()
            .collect();
        documents.sort_unstable();
        for document in &documents {
            if let Some(peers) = self.by_document.get_mut(document) {
                peers.remove(peer);
                if peers.is_empty() {
                    self.by_document.remove(document);
                }
            }
        }
        documents
    }

    /// `document` left memory (or was deleted): no actor of it knows any peer any more.
    pub(crate) fn document_gone(&mut self, document: &DocumentId) {
        for peer in self.by_document.remove(document).unwrap_or_default() {
            if let Some(documents) = self.by_peer.get_mut(&peer) {
                documents.remove(document);
                if documents.is_empty() {
                    self.by_peer.remove(&peer);
                }
            }
        }
    }

    /// The peers introduced to `document`.
    pub(crate) fn peers_of<'a>(
        &'a self,
        document: &DocumentId,
    ) -> impl Iterator<Item = &'a PeerId> + 'a {
        self.by_document.get(document).into_iter().flatten()
    }

    /// Whether `peer` was introduced to `document`.
    pub(crate) fn knows(&self, peer: &PeerId, document: &DocumentId) -> bool {
        self.by_document
            .get(document)
            .is_some_and(|peers| peers.contains(peer))
    }

    /// `document` left memory: the peers that know it keep knowing it, unless they know more
    /// than `keep` documents.
    pub(crate) fn unloaded(&mut self, document: &DocumentId, keep: usize) {
        let Some(peers) = self.by_document.get_mut(document) else {
            return;
        };
        peers.retain(|peer| {
            let Some(documents) = self.by_peer.get_mut(peer) else {
                return false;
            };
            if documents.len() <= keep {
                return true;
            }
            documents.remove(document);
            false
        });
        if peers.is_empty() {
            self.by_document.remove(document);
        }
    }

    /// Whether any peer was introduced to `document`.
    pub(crate) fn anyone_knows(&self, document: &DocumentId) -> bool {
        self.by_document.contains_key(document)
    }

    /// How many (peer, document) introductions there are.
    pub(crate) fn len(&self) -> usize {
        self.by_peer.values().map(HashSet::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_stay_in_step() {
        let (a, b) = (PeerId::from("a"), PeerId::from("b"));
        let (x, y) = (DocumentId::random(), DocumentId::random());
        let mut introductions = Introductions::default();
        introductions.introduce(&a, &x);
        introductions.introduce(&a, &y);
        introductions.introduce(&b, &x);
        introductions.introduce(&b, &x);
        assert_eq!(introductions.len(), 3);

        introductions.document_gone(&x);
        assert_eq!(introductions.len(), 1);
        assert_eq!(introductions.peer_left(&b), Vec::new());
        assert_eq!(introductions.peer_left(&a), vec![y.clone()]);
        assert_eq!(introductions.len(), 0);
        assert!(introductions.by_document.is_empty() && introductions.by_peer.is_empty());

        // A document that unloads stays known, to peers that know few enough documents.
        introductions.introduce(&a, &x);
        introductions.introduce(&b, &x);
        introductions.introduce(&b, &y);
        introductions.unloaded(&x, 1);
        assert!(introductions.knows(&a, &x) && !introductions.knows(&b, &x));
        assert!(introductions.knows(&b, &y));
        introductions.peer_left(&b);
        introductions.peer_left(&a);
        assert_eq!(introductions.len(), 0);

        // A peer that comes back starts afresh.
        introductions.introduce(&a, &y);
        assert_eq!(introductions.peer_left(&a), vec![y]);
    }
}
