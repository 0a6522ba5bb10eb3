//! What can go wrong when using a repo or a handle.

use tandem_core::sync::HandleState;
use tandem_core::untrusted::UntrustedError;
use tandem_core::{DocumentId, InvalidDocumentId, InvalidUrl, StorageError};

/// An error from [`Repo`](crate::Repo).
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The text is neither an Automerge URL nor a document id.
    #[error("not a document id or URL: {0}")]
    InvalidId(#[from] InvalidDocumentId),
    /// The URL is malformed.
    #[error(transparent)]
    InvalidUrl(#[from] InvalidUrl),
    /// No storage and no peer has the document (or every peer refused to share it).
    #[error("document {0} is unavailable")]
    Unavailable(DocumentId),
    /// The document was deleted.
    #[error("document {0} was deleted")]
    Deleted(DocumentId),
    /// The document is on its denylist.
    #[error("document {0} is denied")]
    Denied(DocumentId),
    /// Bytes given to `import` are not an Automerge document, or not one automerge can take
    /// safely (see `tandem_core::untrusted`).
    #[error("not an automerge document: {0}")]
    InvalidDocument(#[from] UntrustedError),
    /// Initial content could not be turned into a document.
    #[error("initial content is not a map: {0}")]
    InvalidInitialContent(String),
    /// The storage adapter failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A network adapter could not start.
    #[error(transparent)]
    Network(#[from] tandem_core::NetworkError),
    /// A URL names heads the document does not have (or not yet).
    #[error("document {0} does not have the heads its URL names")]
    UnknownHeads(DocumentId),
    /// The repo has shut down.
    #[error("the repo has shut down")]
    Shutdown,
    /// A wait took longer than allowed.
    #[error(transparent)]
    Timeout(#[from] Timeout),
}

/// A wait that took longer than allowed: the one error every wait with a limit returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}")]
pub struct Timeout {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub waited: std::time::Duration,
}

/// An error from [`DocHandle`](crate::DocHandle).
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Reading and changing need a ready document.
    #[error("document {document_id} is {state}, not ready")]
    NotReady {
        /// The document.
        document_id: DocumentId,
        /// Its state.
        state: HandleState,
    },
    /// automerge refused the operation.
    #[error(transparent)]
    Automerge(#[from] automerge::AutomergeError),
    /// `change_at` could not start its transaction.
    #[error("cannot change at the given heads: {0}")]
    ChangeAt(String),
    /// A value given to `broadcast` could not be CBOR-encoded.
    #[error("cannot encode ephemeral value: {0}")]
    Encode(String),
    /// The document's worker has stopped (the repo shut down).
    #[error("the repo has shut down")]
    Shutdown,
    /// The document nests objects deeper than JSON is made of it (a document built to make
    /// readers recurse without end).
    #[error("the document nests objects more than {0} deep")]
    TooDeep(usize),
    /// A view (a handle at fixed heads) cannot be changed.
    #[error("{0} is a read-only view")]
    ReadOnly(tandem_core::AutomergeUrl),
    /// A wait took longer than allowed.
    #[error(transparent)]
    Timeout(#[from] Timeout),
}

impl From<automerge::AutomergeError> for RepoError {
    fn from(error: automerge::AutomergeError) -> Self {
        RepoError::InvalidDocument(UntrustedError::Automerge(error))
    }
}
