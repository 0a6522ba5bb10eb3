//! [`Repo`]: the documents of one process, their storage and their peers
//! (docs/protocol.md#document-handles).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automerge::transaction::Transaction;
use automerge::{Automerge, ReadDoc};
use futures::{FutureExt, Stream, StreamExt};
use tandem_core::hub::FindMode;
use tandem_core::sync::HandleState;
use tandem_core::untrusted::apply_untrusted;
use tandem_core::{
    Connection, DocumentId, LocalPeer, NetworkAdapter, PeerId, PeerMetadata, StorageId,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::channels::{Command, DocEvent, HubEvent, QUEUE_DEPTH};
use crate::context::RepoContext;
use crate::heavy_work::heavy_owned;
use crate::hub::Hub;
use crate::initial::document_from_json;
use crate::network::NetworkId;
use crate::{DocHandle, DocumentRef, FindProgress, RepoError, RepoEvent, Timeout};

/// A repository of Automerge documents: found in storage or fetched from peers, kept in sync
/// with every connected peer the share policy allows, saved as they change.
///
/// Cheap to clone; all clones are one repo. Call [`shutdown`](Repo::shutdown) to flush and stop.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use automerge::{transaction::Transactable, ROOT};
/// use tandem_repo::{network::memory, Repo};
///
/// let (left, right, _link) = memory::pair();
/// let alice = Repo::builder().network(left).start().await?;
/// let bob = Repo::builder().network(right).start().await?;
///
/// let (doc, _) = alice.create_with(|tx| tx.put(ROOT, "greeting", "hi")).await?;
///
/// bob.wait_for_peer(alice.peer_id(), std::time::Duration::from_secs(5)).await?;
/// // Ready once bob holds what alice had when asked; later changes follow as they are made.
/// let found = bob.find(doc.url()).await?;
/// assert_eq!(found.heads()?, doc.heads()?);
/// # alice.shutdown().await; bob.shutdown().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Repo {
    inner: Arc<RepoInner>,
}

struct RepoInner {
    ctx: Arc<RepoContext>,
    hub: mpsc::Sender<HubEvent>,
    peers: watch::Receiver<BTreeMap<PeerId, PeerMetadata>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Each transport's task, which hands the hub the connections it opens.
    networks: Mutex<BTreeMap<NetworkId, JoinHandle<()>>>,
    networks_added: AtomicU64,
}

impl RepoInner {
    fn abort_tasks(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let networks =
            std::mem::take(&mut *self.networks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks.into_iter().chain(networks.into_values()) {
            task.abort();
        }
    }
}

impl Drop for RepoInner {
    fn drop(&mut self) {
        self.abort_tasks();
    }
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("peer_id", &self.inner.ctx.peer_id)
            .field("storage_id", &self.inner.ctx.storage_id)
            .finish()
    }
}

impl Repo {
    /// A repo with `ctx`, its hub task running and no network yet.
    pub(crate) fn launch(ctx: Arc<RepoContext>) -> Repo {
        let (hub_tx, hub_rx) = mpsc::channel(QUEUE_DEPTH);
        let (peers_tx, peers_rx) = watch::channel(BTreeMap::new());
        let hub = Hub::new(ctx.clone(), hub_rx, hub_tx.downgrade(), peers_tx);
        let hub_task = tokio::spawn(hub.run());
        Repo {
            inner: Arc::new(RepoInner {
                ctx,
                hub: hub_tx,
                peers: peers_rx,
                tasks: Mutex::new(vec![hub_task]),
                networks: Mutex::new(BTreeMap::new()),
                networks_added: AtomicU64::new(0),
            }),
        }
    }

    /// Asks to learn which heads these storages hold of the documents we share, through peers
    /// that sync with them: each handle then reports them in [`DocHandle::remote_heads`] and
    /// [`DocHandle::remote_heads_changes`]. Needs [`RepoBuilder::remote_heads_gossip`](crate::RepoBuilder::remote_heads_gossip); without
    /// it this does nothing (with a warning), as in JS.
    pub fn subscribe_to_remotes(&self, storages: impl IntoIterator<Item = StorageId>) {
        match &self.inner.ctx.gossip {
            Some(gossip) => gossip.subscribe(storages.into_iter().collect()),
            None => warn!("subscribe_to_remotes: remote-heads gossip is not enabled"),
        }
    }

    /// Stops learning the heads of these storages (peers that relay them for others go on).
    pub fn unsubscribe_from_remotes(&self, storages: impl IntoIterator<Item = StorageId>) {
        if let Some(gossip) = &self.inner.ctx.gossip {
            gossip.unsubscribe(storages.into_iter().collect());
        }
    }

    /// Our peer id.
    pub fn peer_id(&self) -> &PeerId {
        &self.inner.ctx.peer_id
    }

    /// Our storage's id, if we have storage; advertised to peers.
    pub fn storage_id(&self) -> Option<&StorageId> {
        self.inner.ctx.storage_id.as_ref()
    }

    /// Connected peers and what they said about themselves.
    pub fn peers(&self) -> BTreeMap<PeerId, PeerMetadata> {
        self.inner.peers.borrow().clone()
    }

    /// A receiver that sees the set of connected peers change.
    pub fn peer_changes(&self) -> watch::Receiver<BTreeMap<PeerId, PeerMetadata>> {
        self.inner.peers.clone()
    }

    /// Waits until `peer` is connected.
    pub async fn wait_for_peer(&self, peer: &PeerId, timeout: Duration) -> Result<(), RepoError> {
        self.wait_for_peers(timeout, &format!("peer {peer}"), |p| p.contains_key(peer))
            .await
            .map(|_| ())
    }

    /// Waits until some peer is connected and returns it: for a client with one server, whose
    /// peer id it does not know beforehand.
    pub async fn wait_for_any_peer(
        &self,
        timeout: Duration,
    ) -> Result<(PeerId, PeerMetadata), RepoError> {
        let peers = self
            .wait_for_peers(timeout, "any peer", |p| !p.is_empty())
            .await?;
        peers.into_iter().next().ok_or(RepoError::Shutdown)
    }

    /// Waits until the connected peers satisfy `ready`; returns them.
    async fn wait_for_peers(
        &self,
        timeout: Duration,
        what: &str,
        ready: impl FnMut(&BTreeMap<PeerId, PeerMetadata>) -> bool,
    ) -> Result<BTreeMap<PeerId, PeerMetadata>, RepoError> {
        let mut peers = self.peer_changes();
        let waited = tokio::time::timeout(timeout, async {
            peers.wait_for(ready).await.map(|p| p.clone())
        })
        .await;
        match waited {
            Ok(Ok(peers)) => Ok(peers),
            Ok(Err(_)) => Err(RepoError::Shutdown),
            Err(_) => Err(RepoError::Timeout(Timeout {
                what: format!("{what} to connect"),
                waited: timeout,
            })),
        }
    }

    /// Starts another transport.
    pub async fn add_network(&self, adapter: impl NetworkAdapter) -> Result<NetworkId, RepoError> {
        self.add_network_boxed(Box::new(adapter)).await
    }

    /// Stops a transport: it opens no more connections, and its connections close (their
    /// peers leave every document, as when they disconnect).
    pub async fn remove_network(&self, network: NetworkId) -> Result<(), RepoError> {
        let task = self
            .inner
            .networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&network);
        if let Some(task) = task {
            task.abort();
        }
        self.command(|reply| Command::RemoveNetwork { network, reply })
            .await
    }

    /// The transports running, in the order they were added (the builder's first).
    pub fn networks(&self) -> Vec<NetworkId> {
        let networks = self
            .inner
            .networks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        networks.keys().copied().collect()
    }

    pub(crate) async fn add_network_boxed(
        &self,
        adapter: Box<dyn NetworkAdapter>,
    ) -> Result<NetworkId, RepoError> {
        let ctx = &self.inner.ctx;
        let local = LocalPeer {
            peer_id: ctx.peer_id.clone(),
            metadata: PeerMetadata {
                storage_id: ctx.storage_id.clone(),
                is_ephemeral: ctx.is_ephemeral,
            },
        };
        let network = NetworkId(self.inner.networks_added.fetch_add(1, Ordering::Relaxed));
        let mut first_attempt = adapter.first_attempt();
        let mut connections = adapter.start(local).await?;
        if first_attempt.is_some() {
            // Before the caller can look for anything, and before the hub meets any of its
            // connections: finds wait for this transport's first attempt before they give up
            // for want of peers.
            self.inner
                .hub
                .send(HubEvent::FirstAttemptStarted(network))
                .await
                .map_err(|_| RepoError::Shutdown)?;
        }
        let hub = self.inner.hub.downgrade();
        let task = tokio::spawn(async move {
            enum Next {
                Connection(Option<Connection>),
                AttemptEnded,
            }
            loop {
                let next = match first_attempt.as_mut() {
                    Some(attempt) => tokio::select! {
                        biased;
                        connection = connections.next() => Next::Connection(connection),
                        () = attempt => Next::AttemptEnded,
                    },
                    None => Next::Connection(connections.next().await),
                };
                let ended = HubEvent::FirstAttemptEnded(network);
                // The hub meets a connection before it hears that the attempt ended, so that
                // the documents waiting are introduced to the peer before they stop waiting.
                let (events, last) = match next {
                    Next::Connection(Some(connection)) => {
                        let ended = first_attempt.take().map(|_| ended);
                        (
                            [Some(HubEvent::Connected(connection, network)), ended],
                            false,
                        )
                    }
                    // The transport stopped for good.
                    Next::Connection(None) => ([first_attempt.take().map(|_| ended), None], true),
                    Next::AttemptEnded => {
                        first_attempt = None;
                        // A connection the attempt made is on the stream already (the trait's
                        // promise), though it may have come just after this task looked.
                        match connections.next().now_or_never() {
                            Some(Some(connection)) => (
                                [Some(HubEvent::Connected(connection, network)), Some(ended)],
                                false,
                            ),
                            Some(None) => ([Some(ended), None], true),
                            None => ([Some(ended), None], false),
                        }
                    }
                };
                let Some(hub) = hub.upgrade() else { return };
                for event in events.into_iter().flatten() {
                    if hub.send(event).await.is_err() {
                        return;
                    }
                }
                if last {
                    return;
                }
            }
        });
        self.inner
            .networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(network, task);
        Ok(network)
    }

    pub(crate) async fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RepoError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .hub
            .send(HubEvent::Command(make(reply)))
            .await
            .map_err(|_| RepoError::Shutdown)?;
        answer.await.map_err(|_| RepoError::Shutdown)
    }

    /// A new document holding `document`'s history, under a new random id. A document with no
    /// changes gets one empty change, so that its heads are never empty (an empty document looks
    /// absent to peers).
    pub async fn create(&self, mut document: Automerge) -> Result<DocHandle, RepoError> {
        if document.get_heads().is_empty() {
            document.empty_commit(Default::default());
        }
        self.register(DocumentId::random(), document).await
    }

    /// A new document with one empty change.
    pub async fn create_empty(&self) -> Result<DocHandle, RepoError> {
        self.create(Automerge::new()).await
    }

    /// A new document whose first change is made by `init`.
    pub async fn create_with<R>(
        &self,
        init: impl FnOnce(&mut Transaction<'_>) -> R,
    ) -> Result<(DocHandle, R), RepoError> {
        let mut document = Automerge::new();
        let mut tx = document.transaction();
        let result = init(&mut tx);
        tx.commit();
        Ok((self.create(document).await?, result))
    }

    /// A new document holding a serde value that serializes as a map (like `Automerge.from`):
    /// strings become text objects, arrays lists, maps maps.
    pub async fn create_from<T: serde::Serialize>(
        &self,
        value: &T,
    ) -> Result<DocHandle, RepoError> {
        let json = serde_json::to_value(value)
            .map_err(|e| RepoError::InvalidInitialContent(e.to_string()))?;
        self.create(document_from_json(&json)?).await
    }

    async fn register(
        &self,
        document_id: DocumentId,
        document: Automerge,
    ) -> Result<DocHandle, RepoError> {
        let shared = self
            .command(|reply| Command::Create {
                document_id,
                document: Box::new(document),
                reply,
            })
            .await?;
        Ok(DocHandle { shared, view: None })
    }

    /// A find, as a stream of how it stands: [`Loading`](FindProgress::Loading), then (if
    /// storage lacks the document) [`Requesting`](FindProgress::Requesting) with the peers
    /// asked, and last [`Ready`](FindProgress::Ready) with the handle,
    /// [`Unavailable`](FindProgress::Unavailable) (with the handle, which turns ready should the
    /// document arrive later) or [`Deleted`](FindProgress::Deleted). A
    /// document already in memory starts where it stands. Heads in a URL are not applied here
    /// (see [`find`](Self::find)).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use futures::StreamExt;
    /// use tandem_repo::{FindProgress, Repo};
    /// let repo = Repo::builder().start().await?;
    /// let missing = tandem_core::DocumentId::random();
    /// let progress: Vec<FindProgress> = repo.find_with_progress(&missing).await?.collect().await;
    /// assert!(matches!(progress.last(), Some(FindProgress::Unavailable(_))));
    /// # repo.shutdown().await;
    /// # Ok::<(), tandem_repo::RepoError>(()) }).unwrap();
    /// ```
    pub async fn find_with_progress(
        &self,
        id: impl DocumentRef,
    ) -> Result<impl Stream<Item = FindProgress> + Send + 'static, RepoError> {
        let handle = self
            .find_handle(id, FindMode::Wanted { again: false })
            .await?;
        let states = handle.states();
        Ok(futures::stream::unfold(
            (handle, states, false, false),
            |(handle, mut states, started, ended)| async move {
                if ended {
                    return None;
                }
                if started && states.changed().await.is_err() {
                    // The repo shut down.
                    let progress = FindProgress::Unavailable(handle.clone());
                    return Some((progress, (handle, states, true, true)));
                }
                let state = *states.borrow_and_update();
                let progress = match state {
                    HandleState::Loading => FindProgress::Loading,
                    HandleState::Requesting => FindProgress::Requesting {
                        peers: handle.requesting_from(),
                    },
                    HandleState::Ready => FindProgress::Ready(handle.clone()),
                    HandleState::Deleted => FindProgress::Deleted,
                    _ => FindProgress::Unavailable(handle.clone()),
                };
                Some((progress, (handle, states, true, state.is_settled())))
            },
        ))
    }

    /// The hub's find, as `mode` says.
    async fn find_handle(
        &self,
        id: impl DocumentRef,
        mode: FindMode,
    ) -> Result<DocHandle, RepoError> {
        let document_id = id.to_document_id()?;
        if self.inner.ctx.denylist.contains(&document_id) {
            return Err(RepoError::Denied(document_id));
        }
        let shared = self
            .command(|reply| Command::Find {
                document_id,
                mode,
                reply,
            })
            .await?;
        Ok(DocHandle { shared, view: None })
    }

    /// A document from memory, storage or peers, once it is ready. With no storage copy and no
    /// peer to ask it is [`Unavailable`](RepoError::Unavailable) at once; otherwise when every
    /// peer asked has said so, or after the find timeout. A URL with heads gives a read-only
    /// view at those heads ([`DocHandle::view`]).
    pub async fn find(&self, id: impl DocumentRef) -> Result<DocHandle, RepoError> {
        let heads = id.heads()?;
        // Asked again by the application: peers that lacked it may have it now.
        let handle = self
            .find_handle(id, FindMode::Wanted { again: true })
            .await?;
        let mut states = handle.states();
        let state = *states
            .wait_for(|s| s.is_settled())
            .await
            .map_err(|_| RepoError::Shutdown)?;
        match state {
            HandleState::Ready => match heads {
                None => Ok(handle),
                Some(heads) => {
                    let missing = handle
                        .with_doc(|doc| heads.iter().any(|h| doc.get_change_by_hash(h).is_none()))
                        .map_err(|_| RepoError::Unavailable(handle.document_id().clone()))?;
                    if missing {
                        return Err(RepoError::UnknownHeads(handle.document_id().clone()));
                    }
                    handle
                        .view(&heads)
                        .map_err(|_| RepoError::UnknownHeads(handle.document_id().clone()))
                }
            },
            HandleState::Deleted => Err(RepoError::Deleted(handle.document_id().clone())),
            _ => Err(RepoError::Unavailable(handle.document_id().clone())),
        }
    }

    /// A document this repo holds, in memory or in storage, without asking any peer:
    /// [`Unavailable`](RepoError::Unavailable) if it holds none (a document loaded only to
    /// find that out leaves memory at once), [`Deleted`](RepoError::Deleted) if it was
    /// deleted.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tandem_repo::{Repo, RepoError};
    /// let repo = Repo::builder()
    ///     .storage(tandem_storage_mem::MemoryStorage::new())
    ///     .start()
    ///     .await?;
    /// let handle = repo.create_empty().await?;
    /// repo.evict(handle.document_id()).await?;
    /// assert!(repo.find_stored(handle.document_id()).await.is_ok());
    /// let elsewhere = tandem_core::DocumentId::random();
    /// assert!(matches!(repo.find_stored(&elsewhere).await, Err(RepoError::Unavailable(_))));
    /// # repo.shutdown().await;
    /// # Ok::<(), RepoError>(()) }).unwrap();
    /// ```
    pub async fn find_stored(&self, id: impl DocumentRef) -> Result<DocHandle, RepoError> {
        let document_id = id.to_document_id()?;
        let mut states = self
            .find_handle(&document_id, FindMode::Stored)
            .await?
            .states();
        // No handle is held meanwhile: one held would keep a document storage lacks in memory.
        // Past loading, storage has answered: anything but ready means it holds nothing.
        let state = *states
            .wait_for(|s| *s != HandleState::Loading)
            .await
            .map_err(|_| RepoError::Shutdown)?;
        match state {
            HandleState::Ready => self.find_handle(&document_id, FindMode::Stored).await,
            HandleState::Deleted => Err(RepoError::Deleted(document_id)),
            _ => Err(RepoError::Unavailable(document_id)),
        }
    }

    /// Takes a document out of memory now, saved first, whether or not a handle is held
    /// (automerge-repo's `removeFromCache`): held handles turn
    /// [`Unloaded`](HandleState::Unloaded), and a later [`find`](Self::find) loads it again.
    /// Returns once it is out of memory (at once if it was not in memory).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let repo = tandem_repo::Repo::builder()
    ///     .storage(tandem_storage_mem::MemoryStorage::new())
    ///     .start()
    ///     .await?;
    /// let handle = repo.create_empty().await?;
    /// let heads = handle.heads()?;
    /// repo.evict(handle.document_id()).await?;
    /// assert!(repo.documents().await?.is_empty());
    /// assert_eq!(handle.state(), tandem_repo::HandleState::Unloaded);
    /// let again = repo.find(handle.document_id()).await?;
    /// assert_eq!(again.heads()?, heads);
    /// # repo.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn evict(&self, id: impl DocumentRef) -> Result<(), RepoError> {
        let document_id = id.to_document_id()?;
        self.command(|reply| Command::Evict { document_id, reply })
            .await
    }

    /// Deletes a document here: from memory and storage (with its tombstone first, when the
    /// repo keeps them: [`RepoBuilder::tombstones`](crate::RepoBuilder::tombstones)). Peers keep
    /// their copies. Fails if storage could not remove it (it is out of memory either way).
    pub async fn delete(&self, id: impl DocumentRef) -> Result<(), RepoError> {
        let document_id = id.to_document_id()?;
        self.command(|reply| Command::Delete { document_id, reply })
            .await?
    }

    /// A new document (new id) with a copy of `handle`'s history.
    pub async fn clone_doc(&self, handle: &DocHandle) -> Result<DocHandle, RepoError> {
        let document = handle
            .with_doc(|doc| doc.clone())
            .map_err(|_| RepoError::Unavailable(handle.document_id().clone()))?;
        self.create(document).await
    }

    /// A new document (new id) from saved bytes.
    pub async fn import(&self, bytes: &[u8]) -> Result<DocHandle, RepoError> {
        self.create(load_untrusted(bytes).await?).await
    }

    /// Merges saved bytes into the document `id` (found or not): they should share history.
    /// A document that was unavailable becomes ready.
    pub async fn import_into(
        &self,
        id: impl DocumentRef,
        bytes: &[u8],
    ) -> Result<DocHandle, RepoError> {
        let incoming = load_untrusted(bytes).await?;
        let handle = self
            .find_handle(id, FindMode::Wanted { again: false })
            .await?;
        let (reply, merged) = oneshot::channel();
        handle
            .shared
            .worker
            .unbounded_send(DocEvent::Import {
                document: Box::new(incoming),
                size: bytes.len(),
                reply,
            })
            .map_err(|_| RepoError::Shutdown)?;
        merged.await.map_err(|_| RepoError::Shutdown)??;
        // A document that was unavailable turns ready with the merge.
        let mut states = handle.states();
        let state = *states
            .wait_for(|s| matches!(s, HandleState::Ready | HandleState::Deleted))
            .await
            .map_err(|_| RepoError::Shutdown)?;
        if state == HandleState::Deleted {
            return Err(RepoError::Deleted(handle.document_id().clone()));
        }
        Ok(handle)
    }

    /// The document's saved form (`Automerge.save`).
    pub async fn export(&self, id: impl DocumentRef) -> Result<Vec<u8>, RepoError> {
        let handle = self.find(id).await?;
        handle
            .with_doc(|doc| doc.save())
            .map_err(|_| RepoError::Unavailable(handle.document_id().clone()))
    }

    /// Documents coming into and leaving memory, turning unavailable or deleted, from now on:
    /// what to wait on instead of polling [`documents`](Self::documents).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use futures::StreamExt;
    /// use tandem_repo::{Repo, RepoEvent};
    /// let repo = Repo::builder().start().await?;
    /// let mut events = Box::pin(repo.events());
    /// let handle = repo.create_empty().await?;
    /// assert_eq!(events.next().await, Some(RepoEvent::Added(handle.document_id().clone())));
    /// # repo.shutdown().await;
    /// # Ok::<(), tandem_repo::RepoError>(()) }).unwrap();
    /// ```
    pub fn events(&self) -> impl Stream<Item = RepoEvent> + Send + 'static {
        self.inner.ctx.events.subscribe()
    }

    /// The documents held in memory now (loaded, being found, or ready; not unloaded ones).
    pub async fn documents(&self) -> Result<Vec<DocumentId>, RepoError> {
        self.command(|reply| Command::Documents { reply }).await
    }

    /// Tells the repo that its share policy now answers differently (automerge-repo's
    /// `shareConfigChanged`). The policy is asked again whether each connected peer is offered
    /// anything, and every document in memory decides again, for every connected peer, whether to
    /// sync with it: it starts with the peers it now shares with and stops with those it no longer
    /// does (their connection stays up). Without this call, a document already syncing with a
    /// peer, or already passed over, stays so, and a peer keeps the `announce(peer, None)` answer
    /// it had when it connected. Returns once every document has decided; documents not in
    /// memory decide when they next load.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tandem_repo::{network::memory, FnSharePolicy, Repo};
    ///
    /// let open = Arc::new(AtomicBool::new(false));
    /// let offers = open.clone();
    /// let policy = FnSharePolicy::new(move |_, _| offers.load(Ordering::SeqCst), |_, _| true);
    /// let (left, right, _link) = memory::pair();
    /// let alice = Repo::builder().network(left).share_policy(policy).start().await?;
    /// let bob = Repo::builder().network(right).start().await?;
    /// bob.wait_for_peer(alice.peer_id(), Duration::from_secs(5)).await?;
    /// let _doc = alice.create_empty().await?;
    ///
    /// // Offered from now on: alice pushes the document to bob without being asked.
    /// open.store(true, Ordering::SeqCst);
    /// alice.share_policy_changed().await?;
    /// # alice.shutdown().await; bob.shutdown().await;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn share_policy_changed(&self) -> Result<(), RepoError> {
        self.command(|reply| Command::SharePolicyChanged { reply })
            .await
    }

    /// Tells the repo which other cluster nodes are alive now, by the cluster's registry: a
    /// link admitted as a node ([`Grant::cluster_node`](tandem_core::Grant::cluster_node))
    /// whose peer is not among them is closed, whichever node dialled it, so that a node that
    /// stopped saying it is alive is dropped by every other. Links made since the previous call
    /// are spared once (their node may have registered after the registry was read).
    /// Connections that are not nodes' are never touched. Returns once those links are closed.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tandem_core::PeerId;
    /// use tandem_repo::Repo;
    ///
    /// let repo = Repo::builder().start().await?;
    /// // The registry lists node-b alone: a link from any other node is closed.
    /// repo.cluster_nodes_alive([PeerId::from("node-b")]).await?;
    /// # repo.shutdown().await;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn cluster_nodes_alive(
        &self,
        alive: impl IntoIterator<Item = PeerId>,
    ) -> Result<(), RepoError> {
        let nodes = alive.into_iter().collect();
        self.command(|reply| Command::LiveNodes { nodes, reply })
            .await
    }

    /// Saves every document in memory now. Documents that are not ready have nothing to save
    /// and do not make this fail (unlike JS).
    pub async fn flush(&self) -> Result<(), RepoError> {
        self.command(|reply| Command::Flush {
            documents: None,
            reply,
        })
        .await?
    }

    /// Saves the given documents now.
    pub async fn flush_documents(
        &self,
        ids: impl IntoIterator<Item = DocumentId>,
    ) -> Result<(), RepoError> {
        let documents = Some(ids.into_iter().collect());
        self.command(|reply| Command::Flush { documents, reply })
            .await?
    }

    /// Saves everything, closes every connection and stops every task. Later calls fail with
    /// [`RepoError::Shutdown`].
    pub async fn shutdown(&self) {
        let _ = self.command(|reply| Command::Shutdown { reply }).await;
        self.inner.abort_tasks();
    }
}

/// Loads a whole document from bytes given to the repo, checked as a peer's changes are.
async fn load_untrusted(bytes: &[u8]) -> Result<Automerge, RepoError> {
    let bytes = bytes.to_vec();
    let loaded = heavy_owned(bytes.len(), move || {
        let mut document = Automerge::new();
        apply_untrusted(&mut document, |doc| {
            *doc = Automerge::load(&bytes)?;
            Ok(())
        })
        .map(|()| document)
    })
    .await
    .ok_or(RepoError::Shutdown)?;
    Ok(loaded?)
}
