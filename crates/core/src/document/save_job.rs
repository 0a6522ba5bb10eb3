//! What one save writes, and how it went: the data between the actor and the storage driver.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::persistence::SavePlan;
use crate::{StorageError, StorageId};

/// What one save writes. The driver performs it in this order: check the plan
/// ([`SavePlan::check_snapshot`], when [`SavePlan::needs_check`]), write the chunk, remove the
/// chunks it makes obsolete once the write is durable, then write the sync states.
#[derive(Debug)]
pub struct SaveJob {
    /// The new chunk, if the document changed since the last save.
    pub plan: Option<SavePlan>,
    /// Sync states to store, by the peer's storage id.
    pub sync_states: BTreeMap<StorageId, Vec<u8>>,
}

/// How a save went.
#[derive(Debug)]
pub struct SaveOutcome {
    /// Whether the document's changes are durable: the chunk was stored, or there was none.
    pub chunk_stored: bool,
    /// The chunk's plan, present only if a chunk was durably stored.
    pub saved_plan: Option<SavePlan>,
    /// Sync states not stored (the chunk or one of them failed); the actor keeps them dirty.
    pub unsaved_sync_states: BTreeMap<StorageId, Vec<u8>>,
    /// The first error, if any.
    pub result: Result<(), StorageError>,
    /// The plan was a snapshot that did not load back, and nothing was written: why.
    pub snapshot_refused: Option<String>,
    /// After a failure, how long to wait before saving again: the store's backoff
    /// ([`StorageHealth::retry_delay`](crate::storage::StorageHealth::retry_delay)).
    pub retry_after: Duration,
}

impl SaveOutcome {
    /// A save whose task ended without saying how it went (it panicked or was dropped).
    pub fn lost() -> Self {
        SaveOutcome {
            chunk_stored: false,
            saved_plan: None,
            unsaved_sync_states: BTreeMap::new(),
            result: Err(StorageError::Closed),
            snapshot_refused: None,
            retry_after: Duration::from_millis(100),
        }
    }
}
