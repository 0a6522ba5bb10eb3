//! What every task of one repo shares: identity, configuration, storage and policy.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tandem_core::{DocumentId, PeerId, SessionId, StorageAdapter, StorageId};

use crate::gossip::Gossip;
use crate::SharePolicy;

/// Tunables, with automerge-repo's defaults.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    /// How long after a change its save starts (later changes join that save).
    pub(crate) save_debounce: Duration,
    /// How long a find waits for peers before the document is unavailable.
    pub(crate) find_timeout: Duration,
    /// How long a handle nobody holds stays in memory; `None` keeps everything.
    pub(crate) idle_timeout: Option<Duration>,
}

pub(crate) struct RepoContext {
    pub(crate) peer_id: PeerId,
    pub(crate) storage_id: Option<StorageId>,
    pub(crate) is_ephemeral: bool,
    pub(crate) storage: Option<Arc<dyn StorageAdapter>>,
    pub(crate) policy: Arc<dyn SharePolicy>,
    pub(crate) denylist: HashSet<DocumentId>,
    pub(crate) timing: Timing,
    pub(crate) session_id: SessionId,
    /// Replies that acknowledge a peer's changes wait until those changes are saved.
    pub(crate) durable_acks: bool,
    /// Remote-heads gossip, when enabled (off by default, as in JS).
    pub(crate) gossip: Option<Gossip>,
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
        timing: Timing,
        gossip: bool,
        durable_acks: bool,
    ) -> Self {
        RepoContext {
            gossip: gossip.then(|| Gossip::new(peer_id.clone())),
            durable_acks: durable_acks && storage.is_some(),
            peer_id,
            storage_id,
            is_ephemeral,
            storage,
            policy,
            denylist,
            timing,
            session_id: SessionId::random(),
            ephemeral_count: AtomicU64::new(0),
        }
    }

    /// The next ephemeral count: one per message sent, from 1, for the whole repo (§3.4).
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
