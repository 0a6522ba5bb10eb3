//! What a connection's credentials allow (a token checked before it joined): which documents,
//! how far, and whether it speaks for its own id only. A grant only narrows what the share
//! policy allows; it never widens it.

use std::collections::BTreeSet;

use crate::{Access, DocumentId};

/// What one connection may do, whatever the share policy says beyond it.
///
/// ```
/// use tandem_core::{Access, DocumentId, Grant};
/// let doc = DocumentId::random();
/// let grant = Grant {
///     documents: Some([doc.clone()].into()),
///     access: Access::ReadOnly,
///     sender_bound: true,
/// };
/// assert_eq!(grant.access_to(&doc), Access::ReadOnly);
/// assert_eq!(grant.access_to(&DocumentId::random()), Access::Denied);
/// assert_eq!(Grant::default().access_to(&doc), Access::ReadWrite);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The documents it may touch; `None`: any.
    pub documents: Option<BTreeSet<DocumentId>>,
    /// At most this much of them.
    pub access: Access,
    /// Every frame it sends, ephemeral ones included, must carry the sender id it joined with
    /// (a relay may not forward others' ephemeral messages on it).
    pub sender_bound: bool,
}

impl Default for Grant {
    /// Everything the share policy allows: what a connection without credentials gets.
    fn default() -> Self {
        Grant {
            documents: None,
            access: Access::ReadWrite,
            sender_bound: false,
        }
    }
}

impl Grant {
    /// How far the grant lets the connection sync `document`.
    pub fn access_to(&self, document: &DocumentId) -> Access {
        match &self.documents {
            Some(documents) if !documents.contains(document) => Access::Denied,
            _ => self.access,
        }
    }
}
