//! [`RepoBuilder`]: how a [`Repo`] is configured and started.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tandem_core::{DocumentId, NetworkAdapter, PeerId, StorageAdapter, StorageId, StorageKey};
use tracing::warn;

use crate::context::{RepoContext, Tunables};
use crate::{Repo, RepoError, RepoObserver, ShareAll, SharePolicy};

impl Repo {
    /// A builder with automerge-repo's defaults.
    pub fn builder() -> RepoBuilder {
        RepoBuilder::default()
    }
}

/// Configures and starts a [`Repo`].
pub struct RepoBuilder {
    storage: Option<Arc<dyn StorageAdapter>>,
    networks: Vec<Box<dyn NetworkAdapter>>,
    peer_id: Option<PeerId>,
    policy: Arc<dyn SharePolicy>,
    denylist: HashSet<DocumentId>,
    tunables: Tunables,
    is_ephemeral: bool,
    gossip: bool,
    durable_acks: bool,
    observer: Option<Arc<dyn RepoObserver>>,
}

impl std::fmt::Debug for RepoBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoBuilder")
            .field("peer_id", &self.peer_id)
            .field("tunables", &self.tunables)
            .finish_non_exhaustive()
    }
}

impl Default for RepoBuilder {
    fn default() -> Self {
        RepoBuilder {
            storage: None,
            networks: Vec::new(),
            peer_id: None,
            policy: Arc::new(ShareAll),
            denylist: HashSet::new(),
            tunables: Tunables {
                save_debounce: Duration::from_millis(100),
                find_timeout: Duration::from_secs(60),
                idle_timeout: None,
                max_held: crate::MAX_QUEUED_PER_PEER,
                tombstones: false,
                quota: Default::default(),
                max_outbound_bytes: usize::MAX,
                ephemeral_rate: Default::default(),
            },
            is_ephemeral: false,
            gossip: false,
            durable_acks: false,
            observer: None,
        }
    }
}

impl RepoBuilder {
    /// Where documents are kept. Without storage, documents live only in memory and peers.
    pub fn storage(mut self, storage: impl StorageAdapter) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// Like [`storage`](Self::storage), for a store shared with other owners.
    pub fn shared_storage(mut self, storage: Arc<dyn StorageAdapter>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// A transport; call once per adapter. More can be added later with [`Repo::add_network`].
    pub fn network(mut self, adapter: impl NetworkAdapter) -> Self {
        self.networks.push(Box::new(adapter));
        self
    }

    /// Our name on the network (default: a random `peer-…` id, unique per repo).
    pub fn peer_id(mut self, peer_id: impl Into<PeerId>) -> Self {
        self.peer_id = Some(peer_id.into());
        self
    }

    /// Who gets which documents (default [`ShareAll`]).
    pub fn share_policy(mut self, policy: impl SharePolicy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Documents this repo never serves nor fetches.
    pub fn denylist(mut self, documents: impl IntoIterator<Item = DocumentId>) -> Self {
        self.denylist.extend(documents);
        self
    }

    /// How long after a change its save starts (default 100 ms); changes meanwhile join it.
    pub fn save_debounce(mut self, delay: Duration) -> Self {
        self.tunables.save_debounce = delay;
        self
    }

    /// How long a find waits for an answer from peers (default 60 s).
    pub fn find_timeout(mut self, timeout: Duration) -> Self {
        self.tunables.find_timeout = timeout;
        self
    }

    /// Unload documents that nobody holds a handle to after `idle` without activity (saved
    /// first; a later find reloads them). Default: keep everything.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.tunables.idle_timeout = Some(idle);
        self
    }

    /// Tell peers we keep nothing, so they do not persist sync state for us.
    pub fn ephemeral(mut self, is_ephemeral: bool) -> Self {
        self.is_ephemeral = is_ephemeral;
        self
    }

    /// Takes part in remote-heads gossip (docs/protocol.md#remote-heads-gossip): relays
    /// subscriptions and heads records between peers, and lets [`Repo::subscribe_to_remotes`] learn
    /// the heads of storages this repo never meets directly. Off by default, as in automerge-repo;
    /// gossip messages are ignored while it is off.
    pub fn remote_heads_gossip(mut self, enabled: bool) -> Self {
        self.gossip = enabled;
        self
    }

    /// Acknowledge a peer's changes only once they are in storage: the sync reply that tells the
    /// peer we hold its changes (what a JS app's "synced with server" indicator reads) waits
    /// until the changes are saved, and changes that arrive meanwhile join the same save. A
    /// crash then never loses what a peer was told is kept. Costs one storage write of latency
    /// per round trip; off by default (JS saves up to 100 ms after acknowledging). Needs storage.
    /// It covers the changes a peer sends this repo itself (a star of clients around a server);
    /// a peer's change relayed by another peer first (a mesh) can be acknowledged to its author
    /// before the save.
    pub fn durable_acknowledgement(mut self, enabled: bool) -> Self {
        self.durable_acks = enabled;
        self
    }

    /// Makes [`Repo::delete`] stick: the document's tombstone is stored before its chunks are
    /// removed, and from then on a peer that still holds the document cannot bring it back
    /// here (it is told the document is unavailable, as if it never existed, and its changes
    /// are not taken). A tombstone is never removed. Off by default: as in automerge-repo, a
    /// delete is then local and a later find may get the document from a peer again.
    /// Tombstones found in storage are honoured either way, so every repo on one store agrees.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tandem_repo::{Repo, RepoError};
    /// let storage = std::sync::Arc::new(tandem_storage_mem::MemoryStorage::new());
    /// let repo = Repo::builder()
    ///     .shared_storage(storage.clone())
    ///     .tombstones(true)
    ///     .start()
    ///     .await?;
    /// let handle = repo.create_empty().await?;
    /// repo.delete(handle.document_id()).await?;
    /// repo.shutdown().await;
    /// // Another repo on the same storage sees it deleted, not merely missing.
    /// let again = Repo::builder().shared_storage(storage).start().await?;
    /// assert!(matches!(again.find(handle.document_id()).await, Err(RepoError::Deleted(_))));
    /// # again.shutdown().await;
    /// # Ok::<(), RepoError>(()) }).unwrap();
    /// ```
    pub fn tombstones(mut self, enabled: bool) -> Self {
        self.tunables.tombstones = enabled;
        self
    }

    /// Refuses any change from a peer larger than `bytes` (encoded): it is not applied, stored,
    /// relayed or acknowledged, so the peer's sync shows this repo without it. Logged once per
    /// peer and document; a peer that keeps sending refused changes is disconnected. No bound by
    /// default. Local changes are not bounded.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let repo = tandem_repo::Repo::builder()
    ///     .max_change_bytes(1 << 20)
    ///     .max_document_bytes(64 << 20)
    ///     .start()
    ///     .await?;
    /// # repo.shutdown().await;
    /// # Ok::<(), tandem_repo::RepoError>(()) }).unwrap();
    /// ```
    pub fn max_change_bytes(mut self, bytes: usize) -> Self {
        self.tunables.quota.max_change_bytes = Some(bytes);
        self
    }

    /// Refuses peers' changes that would grow a document past `bytes`, as
    /// [`max_change_bytes`](Self::max_change_bytes) refuses them. A document's size is what
    /// storage held of it when it was loaded plus the encoded size of every change taken from
    /// peers since (so it may count more than a fresh load would, until the next load).
    pub fn max_document_bytes(mut self, bytes: u64) -> Self {
        self.tunables.quota.max_document_bytes = Some(bytes);
        self
    }

    /// Disconnects a peer once more than `bytes` of messages wait to be sent to it (it stopped
    /// reading): its socket is closed and what waited is dropped (the peer gets it again when
    /// it reconnects). One message larger than `bytes` still goes on its own. No bound by
    /// default (a peer is still cut off past [`MAX_QUEUED_PER_PEER`](crate::MAX_QUEUED_PER_PEER)
    /// messages).
    pub fn max_outbound_bytes(mut self, bytes: usize) -> Self {
        self.tunables.max_outbound_bytes = bytes;
        self
    }

    /// How many ephemeral messages (presence, cursors) each connection may send: `burst` at
    /// once and `per_second` sustained (400 and 200 by default, far above what presence and
    /// cursors send). Beyond, they are dropped; a connection that keeps flooding is closed.
    pub fn ephemeral_rate(mut self, per_second: u32, burst: u32) -> Self {
        self.tunables.ephemeral_rate = tandem_core::hub::EphemeralRate { burst, per_second };
        self
    }

    /// Reports what the repo does to `observer` (for metrics).
    pub fn observer(mut self, observer: impl RepoObserver) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// [`observer`](Self::observer), shared with the caller.
    pub fn shared_observer(mut self, observer: Arc<dyn RepoObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Starts the repo: reads (or creates and saves) the storage id, spawns the hub and starts
    /// the network adapters. Call within a tokio runtime.
    pub async fn start(self) -> Result<Repo, RepoError> {
        let storage_id = match &self.storage {
            Some(storage) => Some(storage_id(storage.as_ref()).await?),
            None => None,
        };
        let ctx = Arc::new(RepoContext::new(
            self.peer_id.unwrap_or_else(PeerId::random),
            storage_id,
            self.is_ephemeral,
            self.storage,
            self.policy,
            self.denylist,
            self.tunables,
            self.gossip,
            self.durable_acks,
            self.observer,
        ));
        let repo = Repo::launch(ctx);
        for adapter in self.networks {
            repo.add_network_boxed(adapter).await?;
        }
        Ok(repo)
    }
}

/// Reads the store's id, or creates and persists one before anyone is told (unlike JS, where
/// two racing calls can produce two ids).
async fn storage_id(storage: &dyn StorageAdapter) -> Result<StorageId, RepoError> {
    let key = StorageKey::storage_adapter_id();
    if let Some(bytes) = storage.load(&key).await? {
        match String::from_utf8(bytes) {
            Ok(text) if !text.is_empty() => return Ok(StorageId::from(text)),
            _ => warn!("stored storage id is not text; making a new one"),
        }
    }
    let id = StorageId::random();
    storage.save(&key, id.as_str().as_bytes().to_vec()).await?;
    Ok(id)
}
