//! One document's save, run beside its worker so the worker keeps serving peers while the disk
//! syncs.
//!
//! The worker plans the save (which chunk, which chunks it makes obsolete, which sync states
//! moved), hands the plan to [`spawn`], and carries on. The outcome comes back on a oneshot
//! channel; only then does the worker record the chunk in its ledger and release the
//! acknowledgements that waited for it. One save per document is in flight at a time.

use std::sync::Arc;
use std::time::Duration;

use tandem_core::document::{SaveJob, SaveOutcome};
use tandem_core::{ChunkKey, DocumentId, StorageAdapter, StorageId};
use tokio::sync::oneshot;
use tracing::warn;

use crate::context::RepoContext;
use crate::heavy_work::heavy;

/// Retries are timed by the store's health once the write has been tried.
const RETRY_UNKNOWN: Duration = Duration::ZERO;

/// Starts writing `job` and returns where its outcome will arrive. The store's health hears
/// how it went, and times the retry of a failed write.
pub(crate) fn spawn(
    ctx: Arc<RepoContext>,
    storage: Arc<dyn StorageAdapter>,
    document_id: DocumentId,
    job: SaveJob,
) -> oneshot::Receiver<SaveOutcome> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let writes = job.plan.is_some() || !job.sync_states.is_empty();
        let mut outcome = write(storage.as_ref(), &document_id, job).await;
        // A save with nothing to write, or a snapshot refused before writing, says nothing of
        // the store.
        let wrote = writes && outcome.snapshot_refused.is_none();
        if wrote || outcome.result.is_err() {
            outcome.retry_after = ctx.storage_health.written(&document_id, &outcome.result);
        }
        let _ = tx.send(outcome);
    });
    rx
}

async fn write(
    storage: &dyn StorageAdapter,
    document_id: &DocumentId,
    job: SaveJob,
) -> SaveOutcome {
    let SaveJob {
        plan,
        mut sync_states,
    } = job;
    if let Some(plan) = &plan {
        // Here, not in the worker: a whole-document load, which nobody should wait on.
        let work = if plan.needs_check() {
            plan.bytes.len()
        } else {
            0
        };
        if let Err(why) = heavy(work, || plan.check_snapshot()).await {
            return SaveOutcome {
                chunk_stored: false,
                saved_plan: None,
                unsaved_sync_states: sync_states,
                result: Ok(()),
                snapshot_refused: Some(why),
                retry_after: RETRY_UNKNOWN,
            };
        }
        if let Err(error) = storage.save(&plan.key, plan.bytes.clone()).await {
            return SaveOutcome {
                chunk_stored: false,
                saved_plan: None,
                unsaved_sync_states: sync_states,
                result: Err(error),
                snapshot_refused: None,
                retry_after: RETRY_UNKNOWN,
            };
        }
        // Only once the new chunk is durable may the chunks it replaces go.
        for key in &plan.obsolete {
            if let Err(error) = storage.remove(key).await {
                warn!(?key, %error, "could not remove a compacted chunk; it stays");
            }
        }
    }
    let mut result = Ok(());
    let storage_ids: Vec<StorageId> = sync_states.keys().cloned().collect();
    for storage_id in storage_ids {
        let Some(bytes) = sync_states.remove(&storage_id) else {
            continue;
        };
        let key = ChunkKey::sync_state(document_id.clone(), &storage_id).to_storage_key();
        if let Err(error) = storage.save(&key, bytes.clone()).await {
            sync_states.insert(storage_id, bytes);
            result = Err(error);
            break;
        }
    }
    SaveOutcome {
        chunk_stored: true,
        saved_plan: plan,
        unsaved_sync_states: sync_states,
        result,
        snapshot_refused: None,
        retry_after: RETRY_UNKNOWN,
    }
}
