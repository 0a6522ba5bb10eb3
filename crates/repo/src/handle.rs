//! [`DocHandle`]: one document of a repo, shared by everyone who found it
//! (docs/protocol.md#document-handles).

use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{Automerge, ChangeHash, Patch, PatchLog, ReadDoc};
use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tandem_core::sync::HandleState;
use tandem_core::{url_heads, AutomergeUrl, DocumentId, PeerId, StorageId, UrlHead};
use tokio::sync::watch;

use crate::channels::{DocEvent, HandleShared};
use crate::events::{ChangeOrigin, DocumentChange, EphemeralEvent, RemoteHeadsEvent};
use crate::{HandleError, Timeout};

/// A document of a [`Repo`](crate::Repo): its state, its content, and its traffic.
///
/// Cheap to clone (all clones are the same handle), `Send + Sync`. Reads and changes run
/// closures against the document under a lock held only for the closure; the repo's worker for
/// the document then sends the new changes to peers and schedules a save.
///
/// A handle nobody holds any more may be saved and unloaded after the repo's idle time;
/// finding the document again reloads it.
#[derive(Clone)]
pub struct DocHandle {
    pub(crate) shared: Arc<HandleShared>,
    /// For a view ([`DocHandle::at`]): the document frozen at fixed heads.
    pub(crate) view: Option<Arc<FrozenView>>,
}

/// A document as it was at some heads: what a view handle reads.
pub(crate) struct FrozenView {
    heads: Vec<ChangeHash>,
    doc: Automerge,
}

/// A change's author and the like, decoded from the change (automerge-repo's `metadata()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMetadata {
    /// The change's hash.
    pub hash: ChangeHash,
    /// The actor that made it, as hex.
    pub actor: String,
    /// Its sequence number for that actor.
    pub seq: u64,
    /// Seconds since the Unix epoch, as the author's clock said (0 if not recorded).
    pub time: i64,
    /// The commit message, if any.
    pub message: Option<String>,
    /// The changes it depends on.
    pub deps: Vec<ChangeHash>,
}

impl std::fmt::Debug for DocHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocHandle")
            .field("document_id", &self.shared.document_id)
            .field("state", &self.state())
            .finish()
    }
}

impl DocHandle {
    /// The document's id.
    pub fn document_id(&self) -> &DocumentId {
        &self.shared.document_id
    }

    /// `automerge:<id>`, or `automerge:<id>#<heads>` for a view.
    pub fn url(&self) -> AutomergeUrl {
        match &self.view {
            Some(view) => {
                AutomergeUrl::with_heads(self.shared.document_id.clone(), url_heads(&view.heads))
            }
            None => self.shared.document_id.url(),
        }
    }

    /// A read-only handle on the document as it was at `heads` (automerge-repo's
    /// `handle.view(heads)`; also what [`Repo::find`](crate::Repo::find) returns for a URL with
    /// heads). It reads the same content forever; changing it is an error.
    pub fn view(&self, heads: &[ChangeHash]) -> Result<DocHandle, HandleError> {
        let doc = self.ready_doc()?.fork_at(heads)?;
        Ok(DocHandle {
            shared: self.shared.clone(),
            view: Some(Arc::new(FrozenView {
                heads: heads.to_vec(),
                doc,
            })),
        })
    }

    /// The fixed heads of a view handle; `None` for a live handle.
    pub fn view_heads(&self) -> Option<&[ChangeHash]> {
        self.view.as_ref().map(|v| v.heads.as_slice())
    }

    /// While requesting: the peers asked.
    pub(crate) fn requesting_from(&self) -> Vec<PeerId> {
        self.shared
            .requesting_from
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The current state.
    pub fn state(&self) -> HandleState {
        *self.shared.state.borrow()
    }

    /// A receiver of state changes (it sees the current state first).
    pub fn states(&self) -> watch::Receiver<HandleState> {
        self.shared.state.subscribe()
    }

    /// Whether the document can be read and changed.
    pub fn is_ready(&self) -> bool {
        self.state() == HandleState::Ready
    }

    /// Waits until the handle is ready. Fails if it is deleted or unavailable.
    pub async fn when_ready(&self) -> Result<(), HandleError> {
        let mut states = self.states();
        let state = states
            .wait_for(|s| s.is_settled())
            .await
            .map(|s| *s)
            .map_err(|_| HandleError::Shutdown)?;
        match state {
            HandleState::Ready => Ok(()),
            state => Err(self.not_ready(state)),
        }
    }

    /// Waits, at most `timeout`, until the state satisfies `accept`; returns the state reached.
    pub async fn wait_for_state(
        &self,
        timeout: Duration,
        accept: impl Fn(HandleState) -> bool,
    ) -> Result<HandleState, HandleError> {
        let mut states = self.states();
        let waited = tokio::time::timeout(timeout, async {
            states.wait_for(|s| accept(*s)).await.map(|s| *s)
        })
        .await;
        match waited {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(_)) => Err(HandleError::Shutdown),
            Err(_) => Err(HandleError::Timeout(Timeout {
                what: format!(
                    "document {} to reach the state asked for",
                    self.document_id()
                ),
                waited: timeout,
            })),
        }
    }

    /// Changes go through live handles only.
    fn live(&self) -> Result<(), HandleError> {
        match &self.view {
            Some(_) => Err(HandleError::ReadOnly(self.url())),
            None => Ok(()),
        }
    }

    fn not_ready(&self, state: HandleState) -> HandleError {
        HandleError::NotReady {
            document_id: self.shared.document_id.clone(),
            state,
        }
    }

    fn ready_doc(&self) -> Result<MutexGuard<'_, Automerge>, HandleError> {
        self.live()?;
        let state = self.state();
        if state != HandleState::Ready {
            return Err(self.not_ready(state));
        }
        Ok(self.shared.lock())
    }

    /// Reads the document. The lock is held for the closure: keep it short.
    pub fn with_doc<R>(&self, read: impl FnOnce(&Automerge) -> R) -> Result<R, HandleError> {
        if let Some(view) = &self.view {
            return Ok(read(&view.doc));
        }
        let doc = self.ready_doc()?;
        Ok(read(&doc))
    }

    /// The document as JSON, as a JS app reads it: maps as objects, lists as arrays, text as
    /// strings, counters and timestamps as numbers, bytes as base64 strings, conflicts resolved
    /// as automerge resolves them. A document that nests objects more than 100 deep is
    /// refused ([`HandleError::TooDeep`]).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let repo = tandem_repo::Repo::builder().start().await?;
    /// let value = serde_json::json!({"title": "notes", "tags": ["a"], "n": 3});
    /// let handle = repo.create_from(&value).await?;
    /// assert_eq!(handle.to_json()?, value);
    /// # repo.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn to_json(&self) -> Result<serde_json::Value, HandleError> {
        self.with_doc(crate::json::document_json)?
            .ok_or(HandleError::TooDeep(crate::json::MAX_DEPTH))
    }

    /// Changes the document in one transaction and returns the closure's result. The change
    /// reaches connected peers as soon as the document's worker runs.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use automerge::{transaction::Transactable, ReadDoc, ROOT};
    /// let repo = tandem_repo::Repo::builder().start().await?;
    /// let handle = repo.create_empty().await?;
    /// handle.change(|tx| tx.put(ROOT, "title", "hello"))??;
    /// let title = handle.with_doc(|doc| doc.get(ROOT, "title").ok().flatten().map(|(v, _)| v.to_string()))?;
    /// assert_eq!(title.as_deref(), Some("\"hello\""));
    /// repo.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn change<R>(
        &self,
        change: impl FnOnce(&mut Transaction<'_>) -> R,
    ) -> Result<R, HandleError> {
        self.change_with(CommitOptions::default(), change)
    }

    /// [`change`](Self::change) with a commit message and time (read back by
    /// [`metadata`](Self::metadata)).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use automerge::{transaction::{CommitOptions, Transactable}, ROOT};
    /// let repo = tandem_repo::Repo::builder().start().await?;
    /// let handle = repo.create_empty().await?;
    /// let options = CommitOptions::default().with_message("set the title").with_time(1_700_000_000);
    /// handle.change_with(options, |tx| tx.put(ROOT, "title", "hello"))??;
    /// let head = handle.heads()?[0];
    /// let made = handle.metadata(&head)?.expect("the change is there");
    /// assert_eq!(made.message.as_deref(), Some("set the title"));
    /// assert_eq!(made.time, 1_700_000_000);
    /// repo.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn change_with<R>(
        &self,
        options: CommitOptions,
        change: impl FnOnce(&mut Transaction<'_>) -> R,
    ) -> Result<R, HandleError> {
        let result = {
            let mut doc = self.ready_doc()?;
            if self.shared.changes.receiver_count() == 0 {
                let mut tx = doc.transaction();
                let result = change(&mut tx);
                tx.commit_with(options);
                result
            } else {
                // Someone listens: log the patches now, in proportion to the change, rather
                // than have the worker diff the whole document afterwards.
                let from = doc.get_heads();
                let logged = match doc.transaction_log_patches(PatchLog::active()) {
                    Ok(mut tx) => {
                        let result = change(&mut tx);
                        Ok((result, tx.commit_with(options).1))
                    }
                    Err(_) => Err((change, options)),
                };
                let (result, mut log) = match logged {
                    Ok(logged) => logged,
                    // A fresh log always fits; should it not, the worker diffs.
                    Err((change, options)) => {
                        let mut tx = doc.transaction();
                        let result = change(&mut tx);
                        tx.commit_with(options);
                        (result, PatchLog::inactive())
                    }
                };
                let patches = doc.make_patches(&mut log);
                self.shared
                    .log_local_patches(from, doc.get_heads(), patches);
                result
            }
        };
        self.shared.local_change.notify_one();
        Ok(result)
    }

    /// Changes the document as it was at `heads` (the change is concurrent with everything after
    /// them); returns the closure's result and the document's heads afterwards.
    pub fn change_at<R>(
        &self,
        heads: &[ChangeHash],
        change: impl FnOnce(&mut Transaction<'_>) -> R,
    ) -> Result<(R, Vec<ChangeHash>), HandleError> {
        let outcome = {
            let mut doc = self.ready_doc()?;
            let mut tx = doc
                .transaction_at(PatchLog::inactive(), heads)
                .map_err(|e| HandleError::ChangeAt(e.to_string()))?;
            let result = change(&mut tx);
            tx.commit();
            (result, doc.get_heads())
        };
        self.shared.local_change.notify_one();
        Ok(outcome)
    }

    /// The current heads.
    pub fn heads(&self) -> Result<Vec<ChangeHash>, HandleError> {
        self.with_doc(|doc| doc.get_heads())
    }

    /// The current heads in their URL (Base58Check) form.
    pub fn url_heads(&self) -> Result<Vec<UrlHead>, HandleError> {
        self.with_doc(|doc| url_heads(&doc.get_heads()))
    }

    /// Every change hash, in causal order.
    pub fn history(&self) -> Result<Vec<ChangeHash>, HandleError> {
        self.with_doc(|doc| doc.get_changes(&[]).iter().map(|c| c.hash()).collect())
    }

    /// The patches that turn the document at `from` into the document at `to`.
    pub fn diff(&self, from: &[ChangeHash], to: &[ChangeHash]) -> Result<Vec<Patch>, HandleError> {
        self.with_doc(|doc| doc.diff(from, to))
    }

    /// Who made a change, when, and with what message.
    pub fn metadata(&self, hash: &ChangeHash) -> Result<Option<ChangeMetadata>, HandleError> {
        self.with_doc(|doc| {
            doc.get_change_by_hash(hash).map(|change| ChangeMetadata {
                hash: change.hash(),
                actor: change.actor_id().to_hex_string(),
                seq: change.seq(),
                time: change.timestamp(),
                message: change.message().map(str::to_owned),
                deps: change.deps().to_vec(),
            })
        })
    }

    /// Merges `other`'s document (another ready handle) into this one.
    pub fn merge(&self, other: &DocHandle) -> Result<(), HandleError> {
        // Copy first so that the two locks are never held together.
        let mut theirs = other.with_doc(|doc| doc.clone())?;
        {
            let mut doc = self.ready_doc()?;
            doc.merge(&mut theirs)?;
        }
        self.shared.local_change.notify_one();
        Ok(())
    }

    /// Changes as they happen: new heads, the patches, and who made them. A receiver that falls
    /// more than 256 events behind skips the oldest.
    pub fn changes(&self) -> impl Stream<Item = DocumentChange> + Send + 'static {
        self.shared.changes.subscribe()
    }

    /// Ephemeral messages from peers.
    pub fn ephemeral_messages(&self) -> impl Stream<Item = EphemeralEvent> + Send + 'static {
        self.shared.ephemeral.subscribe()
    }

    /// Sends `value`, CBOR-encoded, to every peer syncing this document. Not stored.
    pub async fn broadcast<T: Serialize>(&self, value: &T) -> Result<(), HandleError> {
        let mut data = Vec::new();
        ciborium::into_writer(value, &mut data).map_err(|e| HandleError::Encode(e.to_string()))?;
        self.broadcast_encoded(data)
    }

    /// Broadcasts a value already CBOR-encoded.
    pub(crate) fn broadcast_encoded(&self, data: Vec<u8>) -> Result<(), HandleError> {
        self.shared
            .worker
            .unbounded_send(DocEvent::Broadcast(data))
            .map_err(|_| HandleError::Shutdown)
    }

    /// Starts sharing presence on this document — who is here and what they are doing — with
    /// `initial` as our state; automerge-repo's `Presence`, and heard by it. Dropping the
    /// returned [`Presence`](crate::presence::Presence) (or [`Presence::stop`](crate::presence::Presence::stop)) says goodbye.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use serde_json::json;
    /// use tandem_repo::presence::PresenceConfig;
    /// let repo = tandem_repo::Repo::builder().start().await?;
    /// let handle = repo.create_empty().await?;
    /// let initial = json!({"name": "ada"}).as_object().cloned().unwrap_or_default();
    /// let presence = handle.presence(PresenceConfig::default(), initial);
    /// presence.broadcast("cursor", json!({"line": 3}))?;
    /// assert!(presence.peers().is_empty()); // nobody else here yet
    /// presence.stop().await;
    /// repo.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn presence(
        &self,
        config: crate::presence::PresenceConfig,
        initial: serde_json::Map<String, serde_json::Value>,
    ) -> crate::presence::Presence {
        crate::presence::Presence::start(self.clone(), config, initial)
    }

    /// The heads a remote storage was last known to hold of this document.
    pub fn remote_heads(&self, storage_id: &StorageId) -> Option<RemoteHeadsEvent> {
        let known = self
            .shared
            .remote_heads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        known.get(storage_id).cloned()
    }

    /// Remote heads as they are learned.
    pub fn remote_heads_changes(&self) -> impl Stream<Item = RemoteHeadsEvent> + Send + 'static {
        self.shared.remote_heads_events.subscribe()
    }
}

impl DocumentChange {
    /// Whether this change was made through a handle of this repo.
    pub fn is_local(&self) -> bool {
        self.origin == ChangeOrigin::Local
    }
}

impl EphemeralEvent {
    /// Decodes the CBOR value.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, HandleError> {
        ciborium::from_reader(self.data.as_slice()).map_err(|e| HandleError::Encode(e.to_string()))
    }

    /// The original sender.
    pub fn sender(&self) -> &PeerId {
        &self.sender_id
    }
}
