//! One document's synchronisation with its peers (docs/protocol.md#synchronisation).

use std::collections::{BTreeMap, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash, PatchLog, ReadDoc};

use super::HandleState;
use crate::untrusted::{apply_untrusted_within, guard, OverQuota, Quota, UntrustedError};
use crate::vec_map::VecMap;
use crate::{
    DocUnavailableMessage, DocumentId, Message, MessageData, PeerId, PeerMetadata, StorageId,
    SyncMessage,
};

/// What we believe a peer holds of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerStatus {
    /// Nothing heard yet.
    Unknown,
    /// It has the document (it sent heads, or we sent it ours).
    Has,
    /// It asked for the document with `request`.
    Wants,
    /// It said `doc-unavailable`, or was told so.
    Unavailable,
}

/// A sync message that could not be applied. The message is dropped and the document carries
/// on; the repo disconnects the peer that sent it.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// `data` is not an automerge sync message.
    #[error("undecodable sync message: {0}")]
    Decode(#[from] automerge::sync::ReadMessageError),
    /// automerge refused the message's changes, panicked on them, or took changes it cannot
    /// write back (see [`crate::untrusted`]). The document is as it was.
    #[error("sync message rejected: {0}")]
    Apply(#[from] UntrustedError),
    /// A Bloom filter automerge would divide by zero on, or loop billions of times over.
    #[error("sync message has an unusable Bloom filter: {0}")]
    Bloom(&'static str),
}

/// More probes than this per hash is no Bloom filter anyone sends (automerge uses 7); a peer
/// could otherwise make us allocate and loop up to 2³² times per hash.
const MAX_BLOOM_PROBES: u64 = 64;

/// automerge 0.12 trusts a received filter's parameters: with no bits it divides by zero on the
/// next message we generate (found by the `peer_messages` fuzz target), and its probe count
/// sizes an allocation. Both are checked here first, from the filter's wire form.
fn check_blooms(message: &sync::Message) -> Result<(), SyncError> {
    for have in &message.have {
        let bytes = have.bloom.to_bytes();
        if bytes.is_empty() {
            continue; // an empty filter (no entries) is never probed
        }
        let mut input = bytes.as_slice();
        let mut next =
            || leb128::read::unsigned(&mut input).map_err(|_| SyncError::Bloom("truncated"));
        let (_entries, bits_per_entry, probes) = (next()?, next()?, next()?);
        if bits_per_entry == 0 || input.is_empty() {
            return Err(SyncError::Bloom("no bits"));
        }
        if probes == 0 || probes > MAX_BLOOM_PROBES {
            return Err(SyncError::Bloom("probe count out of range"));
        }
    }
    Ok(())
}

/// What the driver must do after a step.
#[derive(Debug, Default)]
pub struct SyncOutput {
    /// Messages to send, each to its `target_id`.
    pub messages: Vec<Message>,
    /// Sync states to persist, keyed by the peer's storage id
    /// (docs/protocol.md#sync-state-persistence): only peers that advertised a storage id and are
    /// not ephemeral appear here.
    pub sync_states: Vec<(StorageId, Vec<u8>)>,
    /// Heads a peer with a storage id was learned to hold (for `remote-heads` events,
    /// docs/protocol.md#remote-heads-gossip).
    pub remote_heads: Vec<(StorageId, Vec<ChangeHash>)>,
    /// The handle's new state, when it changed.
    pub state_change: Option<HandleState>,
    /// Whether a received message changed the document.
    pub document_changed: bool,
    /// A received message's changes were refused for crossing the [`Quota`]: nothing of it was
    /// taken, and the sender's sync state is as before it.
    pub refused: Option<OverQuota>,
}

impl SyncOutput {
    fn merge(&mut self, other: SyncOutput) {
        self.messages.extend(other.messages);
        self.sync_states.extend(other.sync_states);
        self.remote_heads.extend(other.remote_heads);
        if other.state_change.is_some() {
            self.state_change = other.state_change;
        }
        self.document_changed |= other.document_changed;
        self.refused = self.refused.take().or(other.refused);
    }
}

#[derive(Debug)]
struct PeerSync {
    state: sync::State,
    status: PeerStatus,
    /// Set for peers whose sync state we persist: a storage id and not ephemeral.
    persist_as: Option<StorageId>,
    /// Set for peers with a storage id, whose heads we report.
    storage_id: Option<StorageId>,
    reported_heads: Option<Vec<ChangeHash>>,
}

/// The synchronizer of one document: its handle state, and per peer in its sync set an automerge
/// sync state and a [`PeerStatus`].
///
/// The driver decides *whether* a peer joins the set (share policy, docs/protocol.md#share-policy)
/// and calls [`add_peer`](Self::add_peer); this type decides *what* is sent. While the handle is
/// [`Loading`](HandleState::Loading) peers are registered silently;
/// [`finish_loading`](Self::finish_loading) starts the conversation with all of them at once, so a document is
/// declared unavailable only after every peer that could have it was asked.
#[derive(Debug)]
pub struct DocumentSync {
    document_id: DocumentId,
    local_peer: PeerId,
    state: HandleState,
    /// Ordered, so that the messages of one step come out in the same order in every run (a
    /// seeded simulation replays exactly). A sorted vector: a document has one or two peers as
    /// a rule, and a map node had room for 11. Boxed, so that the vector stays small.
    peers: VecMap<PeerId, Box<PeerSync>>,
    /// Sync states of peers that left, encoded (what survives a reconnect is what the encoding
    /// keeps: the shared heads), for when they come back
    /// (docs/protocol.md#peers-leaving-and-returning).
    parked: BTreeMap<PeerId, Vec<u8>>,
    /// Peers that sent `sync` or `request` for this document on their current connection: the
    /// share policy lets them sync it when `access` allows, even if it is not announced to them.
    asked_by: HashSet<PeerId>,
    /// Peers synced read-only on their current connection: their changes are never applied,
    /// and automerge tells them not to send any.
    read_only: HashSet<PeerId>,
    /// The document's size for its [`Quota`]: what storage held when it was loaded, plus the
    /// encoded size of every change taken from peers since.
    size: u64,
    /// Transports that connect out have not all made their first attempt: a document nobody
    /// has yet stays requested, since the peer that has it may be about to join.
    awaiting_networks: bool,
}

impl DocumentSync {
    /// A synchronizer for `document_id` owned by `local_peer`, starting in `state` (`Loading`
    /// for a find, `Ready` for a document created or imported here).
    pub fn new(document_id: DocumentId, local_peer: PeerId, state: HandleState) -> Self {
        DocumentSync {
            document_id,
            local_peer,
            state,
            peers: VecMap::default(),
            parked: BTreeMap::new(),
            asked_by: HashSet::new(),
            read_only: HashSet::new(),
            size: 0,
            awaiting_networks: false,
        }
    }

    /// Until [`networks_settled`](Self::networks_settled), the document is not declared
    /// unavailable for want of peers that have it: transports that connect out are still making
    /// their first attempt (an application that looks for a document right after starting,
    /// before its client has joined the server, is not told that nobody has it).
    pub fn await_networks(&mut self) {
        self.awaiting_networks = true;
    }

    /// Every transport that connects out has made its first attempt, joined or not: a document
    /// still requested that no peer has is unavailable now.
    pub fn networks_settled(&mut self) -> SyncOutput {
        self.awaiting_networks = false;
        self.check_unavailable()
    }

    /// The document's size as [`Quota`]s count it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Sets the document's size (what storage held of it, once loaded).
    pub fn set_size(&mut self, bytes: u64) {
        self.size = bytes;
    }

    /// The document.
    pub fn document_id(&self) -> &DocumentId {
        &self.document_id
    }

    /// The handle's state.
    pub fn state(&self) -> HandleState {
        self.state
    }

    /// Sets a state the driver decides on its own (`Deleted`, `Unloaded`, `Loading` on reload).
    pub fn set_state(&mut self, state: HandleState) {
        self.state = state;
    }

    /// The peers in the document's sync set.
    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// Whether `peer` is in the sync set.
    pub fn has_peer(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// What we believe `peer` holds, if it is in the sync set.
    pub fn peer_status(&self, peer: &PeerId) -> Option<PeerStatus> {
        self.peers.get(peer).map(|p| p.status)
    }

    /// The heads `peer` last said it has, if it is in the sync set and said any.
    pub fn peer_heads(&self, peer: &PeerId) -> Option<Vec<ChangeHash>> {
        self.peers.get(peer)?.state.their_heads.clone()
    }

    /// Whether any peer has sent a `sync` or `request` for the document.
    pub fn anyone_asked(&self) -> bool {
        !self.asked_by.is_empty()
    }

    /// Whether `peer` sent `sync` or `request` for this document since it connected.
    pub fn was_asked_by(&self, peer: &PeerId) -> bool {
        self.asked_by.contains(peer)
    }

    /// Records that `peer` sent `sync` or `request` for the document, before the driver decides
    /// whether to let it (a refused peer asked all the same: should the policy let it later, it
    /// is synced with). [`receive_sync`](Self::receive_sync) records it too.
    pub fn note_asked(&mut self, peer: &PeerId) {
        self.asked_by.insert(peer.clone());
    }

    /// Whether a sync state for `peer` is kept in memory (so the driver need not read storage).
    pub fn remembers(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer) || self.parked.contains_key(peer)
    }

    /// Whether `peer` is synced read-only: from now on, and at once if it is in the sync set
    /// (switching to read-write asks it to send again what was ignored).
    pub fn set_read_only(
        &mut self,
        document: &Automerge,
        peer: &PeerId,
        read_only: bool,
    ) -> SyncOutput {
        if read_only {
            self.read_only.insert(peer.clone());
        } else {
            self.read_only.remove(peer);
        }
        let mut out = SyncOutput::default();
        let Some(synced) = self.peers.get_mut(peer) else {
            return out;
        };
        if synced.state.read_only == read_only {
            return out;
        }
        synced.state.set_read_only(read_only);
        if self.state != HandleState::Loading {
            self.send_to(document, peer, &mut out);
        }
        out
    }

    /// Adds `peer` to the sync set and, unless still loading, sends it what it lacks (or a
    /// `request` if we have nothing). `stored` is the sync state persisted for the peer, if the
    /// driver read one; a state remembered from an earlier connection wins over it. Either way
    /// only the shared heads survive a reconnect, as in automerge-repo.
    pub fn add_peer(
        &mut self,
        document: &Automerge,
        peer: PeerId,
        metadata: &PeerMetadata,
        stored: Option<sync::State>,
    ) -> SyncOutput {
        if self.peers.contains_key(&peer) {
            return SyncOutput::default();
        }
        let previous = match self.parked.remove(&peer) {
            Some(parked) => Some(parked),
            None => stored.map(|state| state.encode()),
        };
        let mut state = previous
            .and_then(|encoded| sync::State::decode(&encoded).ok())
            // A state saved before a crash that lost the changes it speaks of claims heads this
            // document lacks. automerge cannot recover from that: the peer answers each message
            // with a reset and no changes, forever. Such a state is worth nothing; start afresh.
            .filter(|state| {
                state
                    .shared_heads
                    .iter()
                    .all(|hash| document.get_change_by_hash(hash).is_some())
            })
            .unwrap_or_default();
        state.set_read_only(self.read_only.contains(&peer));
        let persist_as = (!metadata.is_ephemeral)
            .then(|| metadata.storage_id.clone())
            .flatten();
        self.peers.insert(
            peer.clone(),
            Box::new(PeerSync {
                state,
                status: PeerStatus::Unknown,
                persist_as,
                storage_id: metadata.storage_id.clone(),
                reported_heads: None,
            }),
        );
        if self.state == HandleState::Loading {
            return SyncOutput::default();
        }
        let mut out = SyncOutput::default();
        self.send_to(document, &peer, &mut out);
        out.merge(self.check_unavailable());
        out
    }

    /// `peer` disconnected: out of the sync set, its sync state kept for a reconnect, and what it
    /// asked for forgotten (automerge-repo forgets it too: on its next connection it is offered
    /// only what the policy announces to it, until it asks again).
    pub fn peer_left(&mut self, peer: &PeerId) -> SyncOutput {
        self.asked_by.remove(peer);
        self.read_only.remove(peer);
        self.remove_peer(peer)
    }

    /// Takes `peer` out of the sync set (the share policy no longer allows it, or it left); its
    /// sync state is kept for when it is back.
    pub fn remove_peer(&mut self, peer: &PeerId) -> SyncOutput {
        if let Some(gone) = self.peers.remove(peer) {
            self.parked.insert(peer.clone(), gone.state.encode());
        }
        // A peer we were waiting on is gone: maybe nobody left can have the document.
        self.check_unavailable()
    }

    /// Storage has been read: `Ready` if it held the document, otherwise `Requesting` from every
    /// peer in the set (and `Unavailable` at once if there is none). With `look_elsewhere`
    /// false (nobody here or among the peers wants it), a document storage lacks is
    /// `Unavailable` at once, asked of no peer.
    pub fn finish_loading(&mut self, document: &Automerge, look_elsewhere: bool) -> SyncOutput {
        let mut out = SyncOutput::default();
        let next = if !document.get_heads().is_empty() {
            HandleState::Ready
        } else if look_elsewhere {
            HandleState::Requesting
        } else {
            HandleState::Unavailable
        };
        self.state = next;
        out.state_change = Some(next);
        if next == HandleState::Unavailable {
            // Not asked, so counted as not having it: a peer that asks before the document
            // leaves memory hears `doc-unavailable` at once instead of waiting on them.
            for peer in self.peers.values_mut() {
                if peer.status == PeerStatus::Unknown {
                    peer.status = PeerStatus::Unavailable;
                }
            }
            return out;
        }
        let peers: Vec<PeerId> = self.peers.keys().cloned().collect();
        for peer in peers {
            self.send_to(document, &peer, &mut out);
        }
        out.merge(self.check_unavailable());
        out
    }

    /// The find timeout passed without an answer: a document still requested is unavailable.
    pub fn find_timed_out(&mut self) -> SyncOutput {
        let mut out = SyncOutput::default();
        if matches!(self.state, HandleState::Requesting | HandleState::Loading) {
            self.state = HandleState::Unavailable;
            out.state_change = Some(HandleState::Unavailable);
        }
        out
    }

    /// Applies a `sync` (or, with `request`, a `request`) from `from`, replies, and passes any
    /// new changes on to the other peers at once. While loading, the message is applied and its
    /// sender's status noted, but the reply waits for [`finish_loading`](Self::finish_loading):
    /// a peer that asked is then answered as an asker, not sent a `request` of its own. `from` joins the sync set if it was not in it
    /// (the driver has checked `access`); `stored` is its persisted sync state, as for
    /// [`add_peer`](Self::add_peer).
    pub fn receive_sync(
        &mut self,
        document: &mut Automerge,
        from: &PeerId,
        metadata: &PeerMetadata,
        stored: Option<sync::State>,
        data: &[u8],
        request: bool,
    ) -> Result<SyncOutput, SyncError> {
        let mut patch_log = PatchLog::inactive();
        self.receive_sync_logging(
            document,
            from,
            metadata,
            stored,
            data,
            request,
            Quota::default(),
            &mut patch_log,
        )
    }

    /// [`receive_sync`](Self::receive_sync), recording what the message changed in `patch_log`
    /// (turn it into patches with `Automerge::make_patches`). That costs in proportion to the
    /// change, where `Automerge::diff` afterwards costs in proportion to the whole document.
    /// Changes beyond `quota` are refused ([`SyncOutput::refused`]).
    #[allow(clippy::too_many_arguments)]
    pub fn receive_sync_logging(
        &mut self,
        document: &mut Automerge,
        from: &PeerId,
        metadata: &PeerMetadata,
        stored: Option<sync::State>,
        data: &[u8],
        request: bool,
        quota: Quota,
        patch_log: &mut PatchLog,
    ) -> Result<SyncOutput, SyncError> {
        let message = sync::Message::decode(data)?;
        check_blooms(&message)?;
        let mut out = SyncOutput::default();
        if matches!(self.state, HandleState::Deleted | HandleState::Unloaded) {
            return Ok(out);
        }
        self.asked_by.insert(from.clone());
        if !self.peers.contains_key(from) {
            // Registered without sending: the reply below is the first message.
            let loading = std::mem::replace(&mut self.state, HandleState::Loading);
            self.add_peer(document, from.clone(), metadata, stored);
            self.state = loading;
        }
        let Some(peer) = self.peers.get_mut(from) else {
            return Ok(out);
        };
        if request {
            peer.status = PeerStatus::Wants;
        }
        // An empty message (what a peer without the document sends) is not a claim to have it.
        if !message.heads.is_empty() {
            peer.status = PeerStatus::Has;
        } else if !request && peer.status == PeerStatus::Has && document.get_heads().is_empty() {
            // It said it had the document and now answers with nothing: it no longer has it
            // (it deleted it). Left `Has`, we waited on it until the find timeout. A peer we
            // know nothing about that answers a request with an empty `sync` stays `Unknown`:
            // JS servers answer so while they look, then say `doc-unavailable` or send it.
            peer.status = PeerStatus::Unavailable;
        }
        let heads_before = document.get_heads();
        let state = &mut peer.state;
        let received = if message.changes.is_empty() || state.read_only {
            // Nothing to apply (a read-only peer's changes are ignored): only the sync state
            // moves.
            guard(|| document.receive_sync_message_log_patches(state, message, patch_log))
                .and_then(|result| result.map_err(UntrustedError::from))
        } else {
            // Refused, the message must leave no trace: not even in the sync state.
            let before = quota.is_bounded().then(|| state.clone());
            let size = self.size;
            match apply_untrusted_within(document, quota, size, |copy| {
                copy.receive_sync_message_log_patches(state, message, patch_log)
            }) {
                Ok(((), added)) => {
                    self.size += added;
                    Ok(())
                }
                Err(UntrustedError::OverQuota(over)) => {
                    if let Some(before) = before {
                        peer.state = before;
                    }
                    out.refused = Some(over);
                    return Ok(out);
                }
                Err(error) => Err(error),
            }
        };
        if let Err(error) = received {
            // automerge may have half-updated the sync state; the sender is dropped anyway.
            peer.state = sync::State::new();
            return Err(error.into());
        }
        if let Some(storage_id) = &peer.persist_as {
            out.sync_states
                .push((storage_id.clone(), peer.state.encode()));
        }
        if let (Some(storage_id), Some(their_heads)) = (&peer.storage_id, &peer.state.their_heads) {
            if peer.reported_heads.as_ref() != Some(their_heads) {
                peer.reported_heads = Some(their_heads.clone());
                out.remote_heads
                    .push((storage_id.clone(), their_heads.clone()));
            }
        }
        let changed = document.get_heads() != heads_before;
        out.document_changed = changed;
        if self.state == HandleState::Loading {
            // Applied and remembered; `finish_loading` answers every peer at once.
            return Ok(out);
        }
        if changed && self.state != HandleState::Ready {
            self.state = HandleState::Ready;
            out.state_change = Some(HandleState::Ready);
        }
        if changed {
            let peers: Vec<PeerId> = self.peers.keys().cloned().collect();
            for peer in peers {
                self.send_to(document, &peer, &mut out);
            }
        } else {
            self.send_to(document, from, &mut out);
        }
        out.merge(self.check_unavailable());
        Ok(out)
    }

    /// The application looks for a document that is unavailable: ask every peer again (one
    /// that said it lacks the document may have it by now). Anything else is left as it is.
    pub fn request_again(&mut self, document: &Automerge) -> SyncOutput {
        let mut out = SyncOutput::default();
        if self.state != HandleState::Unavailable || !document.get_heads().is_empty() {
            return out;
        }
        self.state = HandleState::Requesting;
        out.state_change = Some(HandleState::Requesting);
        let peers: Vec<PeerId> = self.peers.keys().cloned().collect();
        for peer in &peers {
            if let Some(p) = self.peers.get_mut(peer) {
                if p.status == PeerStatus::Unavailable {
                    p.status = PeerStatus::Unknown;
                }
                // We hold nothing, so a fresh sync state loses nothing, and it makes automerge
                // speak again to a peer it considers up to date.
                p.state = sync::State::new();
            }
            self.send_to(document, peer, &mut out);
        }
        out.merge(self.check_unavailable());
        out
    }

    /// `from` does not have the document.
    pub fn receive_doc_unavailable(&mut self, from: &PeerId) -> SyncOutput {
        if let Some(peer) = self.peers.get_mut(from) {
            peer.status = PeerStatus::Unavailable;
        }
        self.check_unavailable()
    }

    /// The document changed here (a local edit, a merge, an import): every peer gets the new
    /// changes, and a handle that was not ready becomes ready.
    pub fn document_changed(&mut self, document: &Automerge) -> SyncOutput {
        let mut out = SyncOutput::default();
        if matches!(self.state, HandleState::Deleted | HandleState::Unloaded) {
            return out;
        }
        if self.state != HandleState::Ready && !document.get_heads().is_empty() {
            self.state = HandleState::Ready;
            out.state_change = Some(HandleState::Ready);
        }
        let peers: Vec<PeerId> = self.peers.keys().cloned().collect();
        for peer in peers {
            self.send_to(document, &peer, &mut out);
        }
        out
    }

    /// Generates the next message for `peer`, labelled `request` or `sync`
    /// (docs/protocol.md#request-or-sync).
    fn send_to(&mut self, document: &Automerge, peer_id: &PeerId, out: &mut SyncOutput) {
        let ready = self.state == HandleState::Ready;
        let have_heads = !document.get_heads().is_empty();
        // Only a document we lack can be requested; only then is the peer set consulted, so
        // announcing a change to n peers stays O(n).
        let could_request = !ready && !have_heads;
        let someone_has = could_request && self.peers.values().any(|p| p.status == PeerStatus::Has);
        let Some(peer) = self.peers.get_mut(peer_id) else {
            return;
        };
        if could_request && matches!(peer.status, PeerStatus::Wants | PeerStatus::Unavailable) {
            // Neither side has the document: a sync message would carry nothing but an empty
            // document, which the other side answers in kind, and two such peers would answer
            // each other forever. `doc-unavailable` settles it (check_unavailable).
            return;
        }
        let Some(message) = document.generate_sync_message(&mut peer.state) else {
            return;
        };
        let request = could_request
            && peer.state.shared_heads.is_empty()
            && !someone_has
            && peer.status == PeerStatus::Unknown;
        if have_heads {
            peer.status = PeerStatus::Has;
        }
        let Ok(data) = MessageData::new(message.encode()) else {
            return; // automerge never encodes a message as zero bytes
        };
        let message = SyncMessage {
            sender_id: self.local_peer.clone(),
            target_id: peer_id.clone(),
            document_id: self.document_id.clone(),
            data,
        };
        out.messages.push(if request {
            Message::Request(message)
        } else {
            Message::Sync(message)
        });
    }

    /// docs/protocol.md#when-a-document-is-unavailable: while the document is wanted but missing,
    /// once every peer in the set is unavailable or itself wants it, the askers are told
    /// `doc-unavailable` and the handle is unavailable.
    fn check_unavailable(&mut self) -> SyncOutput {
        let mut out = SyncOutput::default();
        if !matches!(
            self.state,
            HandleState::Requesting | HandleState::Unavailable
        ) || self.awaiting_networks
        {
            return out;
        }
        let nobody_has = self
            .peers
            .values()
            .all(|p| matches!(p.status, PeerStatus::Unavailable | PeerStatus::Wants));
        if !nobody_has {
            return out;
        }
        for (peer_id, peer) in self.peers.iter_mut() {
            if peer.status == PeerStatus::Wants {
                peer.status = PeerStatus::Unavailable;
                out.messages
                    .push(Message::DocUnavailable(DocUnavailableMessage {
                        sender_id: self.local_peer.clone(),
                        target_id: peer_id.clone(),
                        document_id: self.document_id.clone(),
                    }));
            }
        }
        if self.state != HandleState::Unavailable {
            self.state = HandleState::Unavailable;
            out.state_change = Some(HandleState::Unavailable);
        }
        out
    }
}
