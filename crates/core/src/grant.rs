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
///     cluster_node: false,
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
    /// The connection is another node of this repo's cluster (it proved so with the cluster's
    /// credentials): it keeps documents in the same storage. Such a peer is synced a document
    /// only while both hold it in memory, its traffic alone keeps nothing in memory here, and
    /// its sync states are never stored (they would share the storage id of ours).
    pub cluster_node: bool,
}

impl Default for Grant {
    /// Everything the share policy allows: what a connection without credentials gets.
    fn default() -> Self {
        Grant {
            documents: None,
            access: Access::ReadWrite,
            sender_bound: false,
            cluster_node: false,
        }
    }
}

impl Grant {
    /// What another node of the cluster gets: every document, both ways, relaying others'
    /// ephemeral messages.
    ///
    /// ```
    /// let node = tandem_core::Grant::cluster_node();
    /// assert!(node.cluster_node && node.documents.is_none() && !node.sender_bound);
    /// ```
    pub fn cluster_node() -> Grant {
        Grant {
            cluster_node: true,
            ..Grant::default()
        }
    }

    /// How far the grant lets the connection sync `document`.
    pub fn access_to(&self, document: &DocumentId) -> Access {
        match &self.documents {
            Some(documents) if !documents.contains(document) => Access::Denied,
            _ => self.access,
        }
    }
}
