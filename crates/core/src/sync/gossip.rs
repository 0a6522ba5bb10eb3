//! Remote-heads gossip (docs/protocol.md#remote-heads-gossip): which heads other storages hold of a
//! document, relayed through peers that never talk to those storages directly.
//!
//! A repo subscribes to storage ids; peers it shares with ("generous" peers: the share policy
//! announces to them) hear of the subscription and relay it further. Whoever syncs directly with
//! a subscribed storage reports the heads it sees to the subscribers that have the document open.
//! The rules are JS's, so that a mixed network behaves as a JS one; the state is one repo's.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::ChangeHash;

use crate::message::{
    Message, RemoteHeads, RemoteHeadsChangedMessage, RemoteSubscriptionChangeMessage,
};
use crate::url::url_heads;
use crate::{DocumentId, PeerId, StorageId};

/// What one gossip event asks the repo to do.
#[derive(Debug, Default)]
pub struct GossipOutput {
    /// Messages to send, each addressed by its `target_id`.
    pub messages: Vec<Message>,
    /// Heads of a subscribed storage learned from gossip, for the local handle of the document.
    pub heads_changed: Vec<(DocumentId, StorageId, RemoteHeads)>,
}

/// One repo's gossip state.
#[derive(Debug)]
pub struct RemoteHeadsGossip {
    local_peer: PeerId,
    /// Storage ids this repo's application subscribed to.
    ours: BTreeSet<StorageId>,
    /// Storage ids peers subscribed to through us, and who.
    theirs: HashMap<StorageId, BTreeSet<PeerId>>,
    /// Peers the share policy announces to: they hear every subscription and every heads record.
    generous: BTreeSet<PeerId>,
    /// Documents each peer syncs with us: subscribers only hear about documents they have open.
    open: HashMap<PeerId, HashSet<DocumentId>>,
    /// The newest heads known per document and storage id.
    known: HashMap<DocumentId, HashMap<StorageId, RemoteHeads>>,
}

impl RemoteHeadsGossip {
    /// Gossip state of the repo whose peer id is `local_peer` (the sender of what it emits).
    pub fn new(local_peer: PeerId) -> Self {
        RemoteHeadsGossip {
            local_peer,
            ours: BTreeSet::new(),
            theirs: HashMap::new(),
            generous: BTreeSet::new(),
            open: HashMap::new(),
            known: HashMap::new(),
        }
    }

    /// The storage ids this repo subscribed to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &StorageId> {
        self.ours.iter()
    }

    /// The newest heads known of `document` at `storage`.
    pub fn known_heads(&self, document: &DocumentId, storage: &StorageId) -> Option<&RemoteHeads> {
        self.known.get(document)?.get(storage)
    }

    /// What we know of `document` at the storages this repo subscribed to: what its handle
    /// should report when it is opened.
    pub fn subscribed_heads(&self, document: &DocumentId) -> Vec<(StorageId, RemoteHeads)> {
        let Some(storages) = self.known.get(document) else {
            return Vec::new();
        };
        storages
            .iter()
            .filter(|(storage, _)| self.ours.contains(*storage))
            .map(|(storage, heads)| (storage.clone(), heads.clone()))
            .collect()
    }

    /// The application wants the heads of these storages: generous peers are asked to relay.
    pub fn subscribe(&mut self, storages: impl IntoIterator<Item = StorageId>) -> GossipOutput {
        let added: Vec<StorageId> = storages
            .into_iter()
            .filter(|s| self.ours.insert(s.clone()))
            .collect();
        let mut out = GossipOutput::default();
        if !added.is_empty() {
            let peers: Vec<PeerId> = self.generous.iter().cloned().collect();
            self.subscription_change(&mut out, &peers, Some(added), None);
        }
        out
    }

    /// The application no longer wants these storages' heads. Relays stop only for storages no
    /// peer wants either.
    pub fn unsubscribe(&mut self, storages: impl IntoIterator<Item = StorageId>) -> GossipOutput {
        let removed: Vec<StorageId> = storages
            .into_iter()
            .filter(|s| self.ours.remove(s) && !self.theirs.contains_key(s))
            .collect();
        let mut out = GossipOutput::default();
        if !removed.is_empty() {
            let peers: Vec<PeerId> = self.generous.iter().cloned().collect();
            self.subscription_change(&mut out, &peers, None, Some(removed));
        }
        out
    }

    /// A peer the share policy announces to connected: it hears our subscriptions and every
    /// heads record we know.
    pub fn add_generous_peer(&mut self, peer: PeerId) -> GossipOutput {
        self.generous.insert(peer.clone());
        let mut out = GossipOutput::default();
        if !self.ours.is_empty() {
            let ours = self.ours.iter().cloned().collect();
            self.subscription_change(&mut out, std::slice::from_ref(&peer), Some(ours), None);
        }
        for (document, storages) in &self.known {
            for (storage, heads) in storages {
                out.messages
                    .push(self.notify(&peer, document, storage, heads.clone()));
            }
        }
        out
    }

    /// A peer left: its subscriptions end, and storages nobody (neither another peer nor our
    /// application) wants any more are dropped upstream.
    pub fn remove_peer(&mut self, peer: &PeerId) -> GossipOutput {
        self.generous.remove(peer);
        self.open.remove(peer);
        let mut removed = Vec::new();
        let ours = &self.ours;
        self.theirs.retain(|storage, subscribers| {
            if subscribers.remove(peer) && subscribers.is_empty() {
                // Upstream keeps sending what our own application subscribed to.
                if !ours.contains(storage) {
                    removed.push(storage.clone());
                }
                return false;
            }
            true
        });
        let mut out = GossipOutput::default();
        if !removed.is_empty() {
            let peers: Vec<PeerId> = self.generous.iter().cloned().collect();
            self.subscription_change(&mut out, &peers, None, Some(removed));
        }
        out
    }

    /// Drops everything held about `document`: its known heads and which peers have it open.
    /// The repo calls this when it unloads the document, so a server that has relayed gossip
    /// about a million documents over its life does not hold a million records. When the
    /// document is loaded again, its peers open it again and hear what is known by then.
    pub fn forget_document(&mut self, document: &DocumentId) {
        self.known.remove(document);
        for documents in self.open.values_mut() {
            documents.remove(document);
        }
    }

    /// How many documents the gossip holds heads or open records of (to check it stays bounded).
    pub fn documents_held(&self) -> usize {
        let mut documents: HashSet<&DocumentId> = self.known.keys().collect();
        documents.extend(self.open.values().flatten());
        documents.len()
    }

    /// `peer` now syncs `document` with us: it hears the heads of the storages it subscribed to.
    pub fn peer_opened(&mut self, peer: &PeerId, document: &DocumentId) -> GossipOutput {
        let mut out = GossipOutput::default();
        if !self
            .open
            .entry(peer.clone())
            .or_default()
            .insert(document.clone())
        {
            return out;
        }
        if let Some(storages) = self.known.get(document) {
            for (storage, heads) in storages {
                if self.theirs.get(storage).is_some_and(|s| s.contains(peer)) {
                    out.messages
                        .push(self.notify(peer, document, storage, heads.clone()));
                }
            }
        }
        out
    }

    /// A directly connected peer whose storage is `storage` has `heads` of `document`, learned
    /// at `now` (ms since the epoch). Returns the messages and the timestamp the record got
    /// (later than `now` if an earlier record was stamped at or after it).
    pub fn direct_heads(
        &mut self,
        document: &DocumentId,
        storage: &StorageId,
        heads: &[ChangeHash],
        now: u64,
    ) -> (GossipOutput, u64) {
        let entry = self.known.entry(document.clone()).or_default();
        // Receivers keep only strictly newer records, and two observations can fall in one
        // millisecond: each new one is stamped after the last.
        let timestamp = match entry.get(storage) {
            // Saturating: a peer may have gossiped a timestamp at the end of time.
            Some(old) if old.timestamp >= now => old.timestamp.saturating_add(1),
            _ => now,
        };
        let record = RemoteHeads {
            heads: url_heads(heads),
            timestamp,
        };
        entry.insert(storage.clone(), record.clone());
        let mut out = GossipOutput::default();
        for peer in self.subscribers_with(storage, document) {
            out.messages
                .push(self.notify(&peer, document, storage, record.clone()));
        }
        (out, timestamp)
    }

    /// A `remote-subscription-change` from `message.sender_id`.
    pub fn receive_subscription_change(
        &mut self,
        message: &RemoteSubscriptionChangeMessage,
    ) -> GossipOutput {
        let from = &message.sender_id;
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let mut already_known = Vec::new();
        for storage in message.add.iter().flatten() {
            let ours = self.ours.contains(storage);
            match self.theirs.get_mut(storage) {
                Some(subscribers) => {
                    already_known.push(storage.clone());
                    subscribers.insert(from.clone());
                }
                None => {
                    if ours {
                        already_known.push(storage.clone());
                    } else {
                        added.push(storage.clone());
                    }
                    self.theirs
                        .insert(storage.clone(), BTreeSet::from([from.clone()]));
                }
            }
        }
        for storage in message.remove.iter().flatten() {
            if let Some(subscribers) = self.theirs.get_mut(storage) {
                subscribers.remove(from);
                if subscribers.is_empty() {
                    self.theirs.remove(storage);
                    if !self.ours.contains(storage) {
                        removed.push(storage.clone());
                    }
                }
            }
        }
        let mut out = GossipOutput::default();
        if !added.is_empty() || !removed.is_empty() {
            // Relayed to every generous peer, the sender included, as JS does.
            let peers: Vec<PeerId> = self.generous.iter().cloned().collect();
            self.subscription_change(&mut out, &peers, Some(added), Some(removed));
        }
        // What we already know of the storages it added, for the documents it has open.
        if let Some(open) = self.open.get(from) {
            for storage in &already_known {
                for document in open {
                    if let Some(heads) = self.known.get(document).and_then(|k| k.get(storage)) {
                        out.messages
                            .push(self.notify(from, document, storage, heads.clone()));
                    }
                }
            }
        }
        out
    }

    /// A `remote-heads-changed` from `message.sender_id`: newer records of storages someone
    /// subscribed to are kept, given to the local handle if we subscribed, and relayed.
    pub fn receive_remote_heads(&mut self, message: &RemoteHeadsChangedMessage) -> GossipOutput {
        let document = &message.document_id;
        let mut out = GossipOutput::default();
        for (storage, heads) in &message.new_heads {
            if !self.ours.contains(storage) && !self.theirs.contains_key(storage) {
                continue;
            }
            let entry = self.known.entry(document.clone()).or_default();
            if entry
                .get(storage)
                .is_some_and(|old| old.timestamp >= heads.timestamp)
            {
                continue;
            }
            entry.insert(storage.clone(), heads.clone());
            if self.ours.contains(storage) {
                out.heads_changed
                    .push((document.clone(), storage.clone(), heads.clone()));
            }
            let mut targets: BTreeSet<PeerId> = self
                .generous
                .iter()
                .filter(|p| *p != &message.sender_id)
                .cloned()
                .collect();
            targets.extend(self.subscribers_with(storage, document));
            for peer in targets {
                out.messages
                    .push(self.notify(&peer, document, storage, heads.clone()));
            }
        }
        out
    }

    fn subscribers_with(&self, storage: &StorageId, document: &DocumentId) -> Vec<PeerId> {
        let Some(subscribers) = self.theirs.get(storage) else {
            return Vec::new();
        };
        subscribers
            .iter()
            .filter(|p| {
                self.open
                    .get(*p)
                    .is_some_and(|docs| docs.contains(document))
            })
            .cloned()
            .collect()
    }

    fn subscription_change(
        &self,
        out: &mut GossipOutput,
        peers: &[PeerId],
        add: Option<Vec<StorageId>>,
        remove: Option<Vec<StorageId>>,
    ) {
        for peer in peers {
            out.messages.push(Message::RemoteSubscriptionChange(
                RemoteSubscriptionChangeMessage {
                    sender_id: self.local_peer.clone(),
                    target_id: peer.clone(),
                    add: add.clone(),
                    remove: remove.clone(),
                },
            ));
        }
    }

    fn notify(
        &self,
        peer: &PeerId,
        document: &DocumentId,
        storage: &StorageId,
        heads: RemoteHeads,
    ) -> Message {
        Message::RemoteHeadsChanged(RemoteHeadsChangedMessage {
            sender_id: self.local_peer.clone(),
            target_id: peer.clone(),
            document_id: document.clone(),
            new_heads: vec![(storage.clone(), heads)],
        })
    }
}
