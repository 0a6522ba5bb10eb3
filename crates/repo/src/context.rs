//! What every task of one repo shares: identity, configuration, storage and policy.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tandem_core::document::DocumentConfig;
use tandem_core::hub::EphemeralRate;
use tandem_core::untrusted::Quota;
use tandem_core::{DocumentId, PeerId, SessionId, StorageAdapter, StorageId};

use crate::event_fanout::EventFanout;
use crate::gossip::Gossip;
use crate::storage_health::SharedStorageHealth;
use crate::{RepoEvent, RepoObserver, SharePolicy};

/// A subscriber to repo events this far behind skips the oldest (with a warning).
const REPO_EVENTS_BEHIND: usize = 65_536;

/// Tunables, with automerge-repo's defaults (and its behaviour where it has no such setting).
#[derive(Debug, Clone)]
pub(crate) struct Tunables {
    /// How long after a change its save starts (later changes join that save).
    pub(crate) save_debounce: Duration,
    /// How long a find waits for peers before the document is unavailable.
    pub(crate) find_timeout: Duration,
    /// How long a handle nobody holds stays in memory; `None` keeps everything.
    pub(crate) idle_timeout: Option<Duration>,
    /// At most this many messages to a document's writers wait for its saves.
    pub(crate) max_held: usize,
    /// A delete leaves a tombstone in storage.
    pub(crate) tombstones: bool,
    /// What peers' changes may add.
    pub(crate) quota: Quota,
    /// Bytes that may wait to be sent to one peer before it is disconnected.
    pub(crate) max_outbound_bytes: usize,
    /// Each connection's allowance of ephemeral messages.
    pub(crate) ephemeral_rate: EphemeralRate,
}

pub(crate) struct RepoContext {
    pub(crate) peer_id: PeerId,
    pub(crate) storage_id: Option<StorageId>,
    pub(crate) is_ephemeral: bool,
    pub(crate) storage: Option<Arc<dyn StorageAdapter>>,
    pub(crate) policy: Arc<dyn SharePolicy>,
    pub(crate) denylist: HashSet<DocumentId>,
    /// Remote-heads gossip, when enabled (off by default, as in JS).
    pub(crate) gossip: Option<Gossip>,
    /// What every document's actor is configured with.
    pub(crate) document: Arc<DocumentConfig>,
    /// Documents coming and going, for [`Repo::events`](crate::Repo::events).
    pub(crate) events: EventFanout<RepoEvent>,
    /// Told what the repo does, for metrics.
    pub(crate) observer: Option<Arc<dyn RepoObserver>>,
    /// Bytes that may wait to be sent to one peer before it is disconnected.
    pub(crate) max_outbound_bytes: usize,
    /// Each connection's allowance of ephemeral messages.
    pub(crate) ephemeral_rate: EphemeralRate,
    /// Every save's outcome, for one backoff and a few log lines per outage.
    pub(crate) storage_health: SharedStorageHealth,
    ephemeral_count: AtomicU64,
}

impl RepoContext {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        peer_id: PeerId,
        storage_id: Option<StorageId>,
        is_ephemeral: bool,
        storage: Option<Arc<dyn StorageAdapter>>,
        policy: Arc<dyn SharePolicy>,
        denylist: HashSet<DocumentId>,
        tunables: Tunables,
        gossip: bool,
        durable_acks: bool,
        observer: Option<Arc<dyn RepoObserver>>,
    ) -> Self {
        let document = Arc::new(DocumentConfig {
            storage: storage.is_some(),
            save_debounce: tunables.save_debounce,
            find_timeout: tunables.find_timeout,
            idle_timeout: tunables.idle_timeout,
            durable_acknowledgement: durable_acks && storage.is_some(),
            max_held: tunables.max_held,
            // What waits for a save waits to be sent as much as what waits in the queue.
            max_held_bytes: tunables.max_outbound_bytes,
            tombstones: tunables.tombstones,
            quota: tunables.quota,
            ..DocumentConfig::new(peer_id.clone(), SessionId::random())
        });
        RepoContext {
            gossip: gossip.then(|| Gossip::new(peer_id.clone())),
            document,
            peer_id,
            storage_id,
            is_ephemeral,
            storage,
            policy,
            denylist,
            events: EventFanout::new(REPO_EVENTS_BEHIND),
            storage_health: SharedStorageHealth::new(observer.clone()),
            max_outbound_bytes: tunables.max_outbound_bytes,
            ephemeral_rate: tunables.ephemeral_rate,
            observer,
            ephemeral_count: AtomicU64::new(0),
        }
    }

    /// The next ephemeral count: one per message sent, from 1, for the whole repo
    /// (docs/protocol.md#ephemeral-messages).
    pub(crate) fn next_ephemeral_count(&self) -> u64 {
        self.ephemeral_count.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Milliseconds since the Unix epoch, for remote-heads timestamps.
pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
