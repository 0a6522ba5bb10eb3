//! The repo's shell around [`RemoteHeadsGossip`]: one lock, the peers' outboxes, no tasks.
//!
//! The hub reports connections and gossip messages, workers report the heads they see and the
//! peers that open their documents, the application subscribes. Each call runs the sans-IO
//! rules and drops the resulting messages into outboxes, which never block — so calling from
//! the hub or from a worker cannot deadlock the two against each other.

use std::collections::HashMap;
use std::sync::Mutex;

use automerge::ChangeHash;
use tandem_core::sync::{GossipOutput, RemoteHeadsGossip};
use tandem_core::{DocumentId, Message, PeerId, RemoteHeads, StorageId};
use tracing::debug;

use crate::outbox::PeerLink;

/// Heads of a subscribed storage learned from gossip, for a local handle.
pub(crate) type GossipedHeads = (DocumentId, StorageId, RemoteHeads);

pub(crate) struct Gossip {
    inner: Mutex<Inner>,
}

struct Inner {
    rules: RemoteHeadsGossip,
    links: HashMap<PeerId, PeerLink>,
}

impl Gossip {
    pub(crate) fn new(local_peer: PeerId) -> Self {
        Gossip {
            inner: Mutex::new(Inner {
                rules: RemoteHeadsGossip::new(local_peer),
                links: HashMap::new(),
            }),
        }
    }

    fn with<R>(&self, step: impl FnOnce(&mut Inner) -> (GossipOutput, R)) -> R {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (out, result) = step(&mut inner);
        for message in out.messages {
            let link = message.target_id().and_then(|t| inner.links.get(t));
            match link {
                Some(link) => link.outbox.send(message),
                None => debug!(kind = message.type_name(), "gossip peer gone; dropped"),
            }
        }
        result
    }

    pub(crate) fn peer_connected(&self, link: PeerLink, generous: bool) {
        self.with(|inner| {
            let peer = link.peer_id.clone();
            inner.links.insert(peer.clone(), link);
            let out = if generous {
                inner.rules.add_generous_peer(peer)
            } else {
                GossipOutput::default()
            };
            (out, ())
        })
    }

    pub(crate) fn peer_disconnected(&self, peer: &PeerId) {
        self.with(|inner| {
            let out = inner.rules.remove_peer(peer);
            inner.links.remove(peer);
            (out, ())
        })
    }

    /// The document was unloaded or deleted: its records go.
    pub(crate) fn forget_document(&self, document: &DocumentId) {
        self.with(|inner| {
            inner.rules.forget_document(document);
            (GossipOutput::default(), ())
        })
    }

    pub(crate) fn peer_opened(&self, peer: &PeerId, document: &DocumentId) {
        self.with(|inner| (inner.rules.peer_opened(peer, document), ()))
    }

    pub(crate) fn direct_heads(
        &self,
        document: &DocumentId,
        storage: &StorageId,
        heads: &[ChangeHash],
        now: u64,
    ) -> u64 {
        self.with(|inner| inner.rules.direct_heads(document, storage, heads, now))
    }

    pub(crate) fn subscribe(&self, storages: Vec<StorageId>) {
        self.with(|inner| (inner.rules.subscribe(storages), ()))
    }

    pub(crate) fn unsubscribe(&self, storages: Vec<StorageId>) {
        self.with(|inner| (inner.rules.unsubscribe(storages), ()))
    }

    /// Heads of subscribed storages already learned for `document`, to seed a new handle.
    pub(crate) fn subscribed_heads(&self, document: &DocumentId) -> Vec<(StorageId, RemoteHeads)> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .rules
            .subscribed_heads(document)
    }

    /// A gossip message from a peer; returns the heads a local handle should learn.
    pub(crate) fn receive(&self, message: &Message) -> Vec<GossipedHeads> {
        self.with(|inner| {
            let mut out = match message {
                Message::RemoteSubscriptionChange(m) => inner.rules.receive_subscription_change(m),
                Message::RemoteHeadsChanged(m) => inner.rules.receive_remote_heads(m),
                _ => GossipOutput::default(),
            };
            let learned = std::mem::take(&mut out.heads_changed);
            (out, learned)
        })
    }
}
