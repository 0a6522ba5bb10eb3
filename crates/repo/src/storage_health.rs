//! The store's health for the whole repo: every save's outcome goes to one
//! [`StorageHealth`], whose reports are logged and told to the observer, and whose backoff
//! times every retry.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_core::storage::{StorageHealth, StorageReport};
use tandem_core::{DocumentId, StorageError};
use tracing::{info, warn};

use crate::RepoObserver;

/// One repo's [`StorageHealth`], shared by its save tasks.
pub(crate) struct SharedStorageHealth {
    health: Mutex<StorageHealth>,
    observer: Option<Arc<dyn RepoObserver>>,
}

impl SharedStorageHealth {
    pub(crate) fn new(observer: Option<Arc<dyn RepoObserver>>) -> Self {
        SharedStorageHealth {
            health: Mutex::new(StorageHealth::new()),
            observer,
        }
    }

    /// A save of `document_id` ended with `result`: how long to wait before retrying it, if it
    /// failed.
    pub(crate) fn written(
        &self,
        document_id: &DocumentId,
        result: &Result<(), StorageError>,
    ) -> Duration {
        // tokio's clock, which tests may pause.
        let now = tokio::time::Instant::now().into_std();
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let (report, retry_after) = match result {
            Ok(()) => (health.succeeded(now), Duration::ZERO),
            Err(error) => {
                let report = health.failed(now, error);
                // Spread retries of documents that failed together.
                let jitter = (RandomState::new().hash_one(document_id) % 1024) as f64 / 1024.0;
                (report, health.retry_delay(now, jitter))
            }
        };
        // Reported under the lock: reports from two save tasks must not cross, or an outage's
        // start could be told after its end.
        if let Some(report) = report {
            self.report(report);
        }
        drop(health);
        retry_after
    }

    fn report(&self, report: StorageReport) {
        match &report {
            StorageReport::Failing { error } => {
                warn!(%error, "storage fails: saves are retried with backoff, and no change is acknowledged before it is saved")
            }
            StorageReport::StillFailing {
                lasted,
                failures,
                error,
            } => warn!(?lasted, failures, %error, "storage still fails"),
            StorageReport::Recovered { lasted, failures } => {
                info!(?lasted, failures, "storage works again; saving resumed")
            }
        }
        if let Some(observer) = &self.observer {
            match report {
                StorageReport::Failing { error } | StorageReport::StillFailing { error, .. } => {
                    observer.storage_failing(Some(&error))
                }
                StorageReport::Recovered { .. } => observer.storage_failing(None),
            }
        }
    }
}
