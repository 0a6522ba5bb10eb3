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
    let heads_before = document.get_heads();
    let mut copy = document.clone();
    let outcome = guard(|| -> Result<T, UntrustedError> {
        let value = apply(&mut copy)?;
        check_written_back(&copy, &heads_before)?;
        Ok(value)
    })?;
    let value = outcome?;
    *document = copy;
    Ok(value)
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
) -> Result<(), UntrustedError> {
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
    Ok(())
}
