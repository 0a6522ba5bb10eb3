//! What a repo reports as it works, for an embedding program's metrics: the repo calls an
//! observer it was given ([`RepoBuilder::observer`](crate::RepoBuilder::observer)); nothing
//! reaches into its internals.

use std::time::Duration;

/// Told what a repo does; every method does nothing unless implemented.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use tandem_repo::RepoObserver;
///
/// #[derive(Default)]
/// struct Slowest(AtomicU64);
/// impl RepoObserver for Slowest {
///     fn durable_acknowledgement(&self, waited: Duration) {
///         self.0.fetch_max(waited.as_micros() as u64, Ordering::Relaxed);
///     }
/// }
/// let repo = tandem_repo::Repo::builder().observer(Slowest::default());
/// # drop(repo);
/// ```
pub trait RepoObserver: Send + Sync + 'static {
    /// With durable acknowledgement, a save made peers' changes durable, and so acknowledged
    /// them: the oldest had waited this long since it arrived.
    fn durable_acknowledgement(&self, _waited: Duration) {}

    /// Saves fail (`Some`, with the latest error: when they start to, and at most every
    /// [`SUMMARY_EVERY`](tandem_core::storage::SUMMARY_EVERY) while they go on) or work again
    /// (`None`). Saves are retried meanwhile, under one backoff for the whole store; an outage
    /// not heard of for a while has no save failing any more (nothing may be left to save).
    fn storage_failing(&self, _error: Option<&str>) {}

    /// A peer's changes were refused: they crossed the quota
    /// ([`RepoBuilder::max_change_bytes`](crate::RepoBuilder::max_change_bytes),
    /// [`RepoBuilder::max_document_bytes`](crate::RepoBuilder::max_document_bytes)).
    fn change_refused(&self, _over: &tandem_core::untrusted::OverQuota) {}

    /// A per-peer limit acted.
    fn peer_limited(&self, _limit: PeerLimit) {}
}

/// A per-peer limit that acted ([`RepoObserver::peer_limited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerLimit {
    /// An ephemeral message over the peer's rate was dropped.
    EphemeralDropped,
    /// A peer flooding ephemeral messages was disconnected.
    EphemeralFloodCutOff,
    /// A peer that stopped reading was disconnected: more than
    /// [`RepoBuilder::max_outbound_bytes`](crate::RepoBuilder::max_outbound_bytes) (or
    /// [`MAX_QUEUED_PER_PEER`](crate::MAX_QUEUED_PER_PEER) messages) waited for it.
    NotReading,
}
