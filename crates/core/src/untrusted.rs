//! Applying bytes from outside (a peer's changes, a stored chunk, an import) to a document
//! without trusting automerge to refuse what it cannot take.
//!
//! automerge 0.12 checks a chunk's checksum but not that its changes make sense against the
//! document. Of changes made by flipping bits in a real one and fixing its checksum (so that any
//! peer could send them; `examples/tamper_rates.rs` counts them):
//! - about 6 % make automerge panic while applying them, and the document is left corrupt in
//!   almost all of those (heads moved, a list lost elements);
//! - about as many are taken without complaint, but automerge then writes them back differently
//!   from how they came: their hashes change, and the document's snapshot never loads again.
//!   One such change, compacted into a snapshot, would lose the whole document on the next
//!   start.
//!
//! So foreign bytes are applied to a copy of the document, inside `catch_unwind`. A copy costs
//! far less than applying a change (in automerge 0.12, 3 µs for a small document and 13–35 µs
//! for 100,000 characters of text, against 40 µs and 18 ms to apply a five-character change).
//! The copy replaces the document only if automerge neither panicked nor erred, and every change
//! it took still has its own hash when written back. Otherwise the document is exactly as it was.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};

use automerge::{Automerge, AutomergeError, ChangeHash};

/// Why bytes from outside were not applied. The document is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedError {
    /// automerge refused the bytes.
    #[error(transparent)]
    Automerge(#[from] AutomergeError),
    /// automerge panicked on them.
    #[error("automerge panicked on them: {0}")]
    Panicked(String),
    /// automerge took a change but writes it back with another hash: stored, the document would
    /// not load again.
    #[error("automerge took change {0} but cannot write it back as it came")]
    Unwritable(ChangeHash),
    /// The changes are well formed but larger than a [`Quota`] allows.
    #[error(transparent)]
    OverQuota(#[from] OverQuota),
}

/// How much bytes from outside may add to a document: each change at most `max_change_bytes`,
/// the document at most `max_document_bytes` (its size so far plus the new changes' encoded
/// size). `None`: no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// The largest change taken.
    pub max_change_bytes: Option<usize>,
    /// The largest a document may grow to.
    pub max_document_bytes: Option<u64>,
}

impl Quota {
    /// Whether anything is bounded.
    pub fn is_bounded(&self) -> bool {
        self.max_change_bytes.is_some() || self.max_document_bytes.is_some()
    }
}

/// Which bound of a [`Quota`] changes would cross.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverQuota {
    /// One change is too large.
    #[error("change {hash} is {bytes} bytes; at most {limit} are taken")]
    Change {
        /// The change.
        hash: ChangeHash,
        /// Its encoded size.
        bytes: usize,
        /// The bound.
        limit: usize,
    },
    /// The document would grow too large.
    #[error("the document would grow to {bytes} bytes; at most {limit} are taken")]
    Document {
        /// Its size with the changes.
        bytes: u64,
        /// The bound.
        limit: u64,
    },
}

/// Runs `apply` on a copy of `document` and keeps the copy only if it went well (see the module
/// documentation). The changes `apply` adds are checked to write back with their own hashes.
///
/// ```
/// use automerge::{transaction::Transactable, Automerge, ROOT};
/// use tandem_core::untrusted::apply_untrusted;
///
/// let mut theirs = Automerge::new();
/// theirs.transact::<_, _, automerge::AutomergeError>(|tx| {
///     tx.put(ROOT, "title", "from a peer")?;
///     Ok(())
/// }).unwrap();
/// let mut ours = Automerge::new();
/// apply_untrusted(&mut ours, |doc| doc.load_incremental(&theirs.save()))?;
/// assert_eq!(ours.get_heads(), theirs.get_heads());
///
/// // Bytes automerge refuses leave the document as it was.
/// let refused = apply_untrusted(&mut ours, |doc| {
///     *doc = Automerge::load(b"not a document")?;
///     Ok(())
/// });
/// assert!(refused.is_err());
/// assert_eq!(ours.get_heads(), theirs.get_heads());
/// # Ok::<(), tandem_core::untrusted::UntrustedError>(())
/// ```
pub fn apply_untrusted<T>(
    document: &mut Automerge,
    apply: impl FnOnce(&mut Automerge) -> Result<T, AutomergeError>,
) -> Result<T, UntrustedError> {
    apply_untrusted_within(document, Quota::default(), 0, apply).map(|(value, _)| value)
}

/// [`apply_untrusted`], refusing changes beyond `quota` for a document of `size` bytes so far:
/// the value and the encoded size of the changes taken.
///
/// ```
/// use automerge::{transaction::Transactable, Automerge, ROOT};
/// use tandem_core::untrusted::{apply_untrusted_within, OverQuota, Quota, UntrustedError};
///
/// let mut theirs = Automerge::new();
/// theirs.transact::<_, _, automerge::AutomergeError>(|tx| {
///     tx.put(ROOT, "text", "x".repeat(1000))?;
///     Ok(())
/// }).unwrap();
/// let mut ours = Automerge::new();
/// let quota = Quota { max_change_bytes: Some(100), max_document_bytes: None };
/// let refused = apply_untrusted_within(&mut ours, quota, 0, |doc| doc.merge(&mut theirs.clone()));
/// assert!(matches!(refused, Err(UntrustedError::OverQuota(OverQuota::Change { .. }))));
/// assert!(ours.get_heads().is_empty());
/// ```
pub fn apply_untrusted_within<T>(
    document: &mut Automerge,
    quota: Quota,
    size: u64,
    apply: impl FnOnce(&mut Automerge) -> Result<T, AutomergeError>,
) -> Result<(T, u64), UntrustedError> {
    let heads_before = document.get_heads();
    let mut copy = document.clone();
    let outcome = guard(|| -> Result<(T, u64), UntrustedError> {
        let value = apply(&mut copy)?;
        let added = check_written_back(&copy, &heads_before, quota, size)?;
        Ok((value, added))
    })?;
    let taken = outcome?;
    *document = copy;
    Ok(taken)
}

/// Runs `f`, turning a panic into [`UntrustedError::Panicked`]. For work on bytes from outside
/// that has no document to spoil (loading a fresh one, say).
pub fn guard<T>(f: impl FnOnce() -> T) -> Result<T, UntrustedError> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(no message)".to_owned());
        UntrustedError::Panicked(message)
    })
}

/// Every change `document` has beyond `heads_before` must be written back with the hash it is
/// known by. automerge 0.12 rebuilds changes from its operations; a change it took but cannot
/// rebuild byte for byte gets another hash, and then neither a snapshot nor the changes load.
/// The hashes the change graph holds (cheap metadata) are compared with those of the rebuilt
/// changes, which costs about a third of applying a small change.
fn check_written_back(
    document: &Automerge,
    heads_before: &[ChangeHash],
    quota: Quota,
    size: u64,
) -> Result<u64, UntrustedError> {
    let known: HashSet<ChangeHash> = document
        .get_changes_meta(heads_before)
        .iter()
        .map(|meta| meta.hash)
        .collect();
    let written = document.get_changes(heads_before);
    if let Some(change) = written.iter().find(|c| !known.contains(&c.hash())) {
        return Err(UntrustedError::Unwritable(change.hash()));
    }
    if written.len() != known.len() {
        // Some change was not written back at all; name one of them.
        let written: HashSet<ChangeHash> = written.iter().map(|c| c.hash()).collect();
        if let Some(missing) = known.iter().find(|h| !written.contains(h)) {
            return Err(UntrustedError::Unwritable(*missing));
        }
    }
    let mut added = 0u64;
    for change in &written {
        let bytes = change.raw_bytes().len();
        if let Some(limit) = quota.max_change_bytes.filter(|limit| bytes > *limit) {
            return Err(OverQuota::Change {
                hash: change.hash(),
                bytes,
                limit,
            }
            .into());
        }
        added += bytes as u64;
    }
    if let Some(limit) = quota
        .max_document_bytes
        .filter(|limit| size + added > *limit)
    {
        return Err(OverQuota::Document {
            bytes: size + added,
            limit,
        }
        .into());
    }
    Ok(added)
}
