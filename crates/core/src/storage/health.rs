//! Whether the store takes writes, across every document: one backoff for all retries and a
//! few log lines per outage, however many documents fail.
//!
//! Without it each failing document retried on its own schedule and logged each failure: a
//! full disk under 200 documents wrote thousands of warnings a second and hammered the store.

use std::time::{Duration, Instant};

/// The first retry waits this long after the outage starts.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// No retry waits longer: saving resumes within this long of the store coming back.
const LONGEST_RETRY: Duration = Duration::from_secs(5);
/// While an outage lasts, at most one summary this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The store's health as seen from the writes made to it, as a state machine: the driver
/// feeds it every write's outcome and logs what it reports.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tandem_core::storage::{StorageHealth, StorageReport, StorageError, StorageKey};
///
/// let mut health = StorageHealth::new();
/// let start = Instant::now();
/// let full = || StorageError::Io { key: StorageKey::new(["k"]), source: std::io::Error::other("disk full") };
/// // The first failure starts an outage; the next ones are counted quietly.
/// assert!(matches!(health.failed(start, &full()), Some(StorageReport::Failing { .. })));
/// assert!(health.failed(start + Duration::from_secs(1), &full()).is_none());
/// // Retries wait longer the longer the outage lasts.
/// assert!(health.retry_delay(start + Duration::from_secs(3), 0.5) > Duration::from_secs(2));
/// // The first write that lands ends it.
/// let report = health.succeeded(start + Duration::from_secs(4));
/// assert!(matches!(report, Some(StorageReport::Recovered { failures: 2, .. })));
/// assert!(health.outage().is_none());
/// ```
#[derive(Debug, Default)]
pub struct StorageHealth {
    outage: Option<Outage>,
}

/// A store failing writes since `since`.
#[derive(Debug, Clone)]
pub struct Outage {
    /// When the first write failed.
    pub since: Instant,
    /// Writes failed since.
    pub failures: u64,
    /// The latest error.
    pub error: String,
    failures_reported: u64,
    reported_at: Instant,
}

/// What to log about the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageReport {
    /// A write failed after writes had worked: an outage starts.
    Failing {
        /// Why.
        error: String,
    },
    /// Writes keep failing (at most every [`SUMMARY_EVERY`]).
    StillFailing {
        /// How long the outage has lasted.
        lasted: Duration,
        /// Writes failed since the last report.
        failures: u64,
        /// The latest error.
        error: String,
    },
    /// A write landed: the outage is over.
    Recovered {
        /// How long it lasted.
        lasted: Duration,
        /// Writes that failed during it.
        failures: u64,
    },
}

impl StorageHealth {
    /// Healthy until told otherwise.
    pub fn new() -> Self {
        StorageHealth::default()
    }

    /// A write failed at `now`; what to log, if anything.
    pub fn failed(&mut self, now: Instant, error: &crate::StorageError) -> Option<StorageReport> {
        let error = error.to_string();
        match &mut self.outage {
            None => {
                self.outage = Some(Outage {
                    since: now,
                    failures: 1,
                    error: error.clone(),
                    failures_reported: 1,
                    reported_at: now,
                });
                Some(StorageReport::Failing { error })
            }
            Some(outage) => {
                outage.failures += 1;
                outage.error = error;
                if now.duration_since(outage.reported_at) < SUMMARY_EVERY {
                    return None;
                }
                let failures = outage.failures - outage.failures_reported;
                outage.failures_reported = outage.failures;
                outage.reported_at = now;
                Some(StorageReport::StillFailing {
                    lasted: now.duration_since(outage.since),
                    failures,
                    error: outage.error.clone(),
                })
            }
        }
    }

    /// A write landed at `now`; what to log, if anything.
    pub fn succeeded(&mut self, now: Instant) -> Option<StorageReport> {
        let outage = self.outage.take()?;
        Some(StorageReport::Recovered {
            lasted: now.duration_since(outage.since),
            failures: outage.failures,
        })
    }

    /// How long a write that just failed waits before it is tried again: about as long as the
    /// outage has lasted (so retries thin out exponentially), from 100 ms to 5 s, spread by
    /// `jitter` (a random number in `[0, 1)`: between half and one and a half times that) so
    /// that documents that failed together do not retry together.
    pub fn retry_delay(&self, now: Instant, jitter: f64) -> Duration {
        let lasted = self
            .outage
            .as_ref()
            .map_or(Duration::ZERO, |outage| now.duration_since(outage.since));
        let base = lasted.clamp(FIRST_RETRY, LONGEST_RETRY);
        base.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
    }

    /// The outage under way, if writes are failing.
    pub fn outage(&self) -> Option<&Outage> {
        self.outage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 200 documents fail every write for 15 s, each retrying when told: a handful of reports,
    /// retries that thin out, and one line when it ends.
    #[test]
    fn an_outage_of_many_documents_is_reported_a_few_times() {
        let mut health = StorageHealth::new();
        let start = Instant::now();
        let error = || crate::StorageError::Io {
            key: crate::StorageKey::new(["k"]),
            source: std::io::Error::other("No space left on device"),
        };
        // Each document's next attempt.
        let mut next: Vec<Instant> = (0..200).map(|_| start).collect();
        let mut reports = Vec::new();
        let mut attempts = 0;
        let end = start + Duration::from_secs(15);
        loop {
            let (index, &at) = next
                .iter()
                .enumerate()
                .min_by_key(|(_, at)| **at)
                .expect("documents");
            if at >= end {
                break;
            }
            attempts += 1;
            reports.extend(health.failed(at, &error()));
            let jitter = (index as f64 * 0.618).fract();
            next[index] = at + health.retry_delay(at, jitter);
        }
        reports.extend(health.succeeded(end));
        assert!(matches!(reports[0], StorageReport::Failing { .. }));
        assert!(matches!(
            reports.last(),
            Some(StorageReport::Recovered { failures, .. }) if *failures == attempts
        ));
        assert!(reports.len() <= 4, "{reports:?}");
        // Immediate retries every 100 ms would have been 30,000 attempts.
        assert!(attempts < 2_000, "{attempts} attempts");
    }
}
