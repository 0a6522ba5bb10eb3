//! [`DocumentRef`]: what a find or a delete accepts as the name of a document.

use automerge::ChangeHash;
use tandem_core::{AutomergeUrl, DocumentId};

use crate::RepoError;

/// Anything that names a document: a [`DocumentId`], an [`AutomergeUrl`], or text holding
/// either (`automerge:…`, a bare Base58Check id, or a legacy UUID).
pub trait DocumentRef {
    /// The document id, or why the text is not one.
    fn to_document_id(&self) -> Result<DocumentId, RepoError>;

    /// The heads a URL names (`automerge:<id>#<heads>`), if any.
    fn heads(&self) -> Result<Option<Vec<ChangeHash>>, RepoError> {
        Ok(None)
    }
}

impl DocumentRef for DocumentId {
    fn to_document_id(&self) -> Result<DocumentId, RepoError> {
        Ok(self.clone())
    }
}

impl DocumentRef for AutomergeUrl {
    fn to_document_id(&self) -> Result<DocumentId, RepoError> {
        Ok(self.document_id().clone())
    }

    fn heads(&self) -> Result<Option<Vec<ChangeHash>>, RepoError> {
        Ok(self.change_hashes()?)
    }
}

impl DocumentRef for str {
    fn to_document_id(&self) -> Result<DocumentId, RepoError> {
        if self.starts_with("automerge:") {
            let url: AutomergeUrl = self.parse()?;
            return Ok(url.document_id().clone());
        }
        Ok(DocumentId::interpret(self)?)
    }

    fn heads(&self) -> Result<Option<Vec<ChangeHash>>, RepoError> {
        if self.starts_with("automerge:") {
            let url: AutomergeUrl = self.parse()?;
            return DocumentRef::heads(&url);
        }
        Ok(None)
    }
}

impl DocumentRef for String {
    fn to_document_id(&self) -> Result<DocumentId, RepoError> {
        self.as_str().to_document_id()
    }

    fn heads(&self) -> Result<Option<Vec<ChangeHash>>, RepoError> {
        self.as_str().heads()
    }
}

impl<T: DocumentRef + ?Sized> DocumentRef for &T {
    fn to_document_id(&self) -> Result<DocumentId, RepoError> {
        (**self).to_document_id()
    }

    fn heads(&self) -> Result<Option<Vec<ChangeHash>>, RepoError> {
        (**self).heads()
    }
}
