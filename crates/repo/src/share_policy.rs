//! Who gets which documents (docs/protocol.md#share-policy).

use std::sync::Arc;

use async_trait::async_trait;
use tandem_core::{Access, DocumentId, PeerId};

/// Decides which peers are offered which documents, and which may have them at all.
///
/// - `announce(peer, Some(doc))`: push `doc` to `peer` unprompted (when either side connects or
///   the document is created or found).
/// - `announce(peer, None)`: whether `peer` is offered documents at all. A repo asks this when
///   the peer connects and again on [`Repo::share_policy_changed`](crate::Repo::share_policy_changed);
///   `false` spares it one call per document it holds (what a sync server with thousands of
///   documents wants). The answer at connection time also decides whether the peer is
///   "generous" for remote-heads gossip, for the connection's lifetime (as in automerge-repo).
/// - `access(peer, doc)`: whether and how `peer` may sync `doc`, announced or asked for:
///   [`Access::ReadWrite`], [`Access::ReadOnly`] (it receives the document and every change,
///   and its own changes are never applied, stored or relayed) or [`Access::Denied`] (answered
///   with `doc-unavailable`, exactly as if the document did not exist here).
///
/// A peer that asked for a document and has access keeps getting its changes even when it is not
/// announced, for as long as its connection lasts (a peer that reconnects asks again, as with
/// automerge-repo). An ask that `access` refused still counts: should the policy allow it later
/// ([`Repo::share_policy_changed`](crate::Repo::share_policy_changed)), the peer gets the
/// document.
///
/// The default (both always true) is automerge-repo's; a server usually wants [`AskOnly`].
#[async_trait]
pub trait SharePolicy: Send + Sync + 'static {
    /// Whether to offer `document` (or, with `None`, anything) to `peer` unprompted.
    async fn announce(&self, _peer: &PeerId, _document: Option<&DocumentId>) -> bool {
        true
    }

    /// Whether and how `peer` may sync `document`.
    async fn access(&self, _peer: &PeerId, _document: &DocumentId) -> Access {
        Access::ReadWrite
    }
}

/// Offer every document to every peer (automerge-repo's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct ShareAll;

#[async_trait]
impl SharePolicy for ShareAll {}

/// Offer nothing unprompted; sync what peers ask for (`sharePolicy: async () => false`, the
/// usual sync-server setting).
#[derive(Debug, Clone, Copy, Default)]
pub struct AskOnly;

#[async_trait]
impl SharePolicy for AskOnly {
    async fn announce(&self, _peer: &PeerId, _document: Option<&DocumentId>) -> bool {
        false
    }
}

/// A policy from two plain functions, for the common case where the decision needs no IO.
/// `access` answers an [`Access`], or a `bool` (read-write or denied).
///
/// ```
/// use tandem_core::Access;
/// use tandem_repo::{FnSharePolicy, SharePolicy};
/// let policy = FnSharePolicy::new(
///     |_peer, _doc| false,                      // announce nothing
///     |peer, _doc| match peer.as_str() {
///         "mallory" => Access::Denied,
///         "auditor" => Access::ReadOnly,
///         _ => Access::ReadWrite,
///     },
/// );
/// # futures::executor::block_on(async {
/// let doc = tandem_core::DocumentId::random();
/// assert_eq!(policy.access(&"mallory".into(), &doc).await, Access::Denied);
/// assert_eq!(policy.access(&"auditor".into(), &doc).await, Access::ReadOnly);
/// # });
/// ```
pub struct FnSharePolicy {
    announce: AnnounceFn,
    access: AccessFn,
}

type AnnounceFn = Arc<dyn Fn(&PeerId, Option<&DocumentId>) -> bool + Send + Sync>;
type AccessFn = Arc<dyn Fn(&PeerId, &DocumentId) -> Access + Send + Sync>;

impl FnSharePolicy {
    /// A policy calling `announce` and `access`.
    pub fn new<A: Into<Access>>(
        announce: impl Fn(&PeerId, Option<&DocumentId>) -> bool + Send + Sync + 'static,
        access: impl Fn(&PeerId, &DocumentId) -> A + Send + Sync + 'static,
    ) -> Self {
        FnSharePolicy {
            announce: Arc::new(announce),
            access: Arc::new(move |peer, document| access(peer, document).into()),
        }
    }
}

impl std::fmt::Debug for FnSharePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnSharePolicy").finish_non_exhaustive()
    }
}

#[async_trait]
impl SharePolicy for FnSharePolicy {
    async fn announce(&self, peer: &PeerId, document: Option<&DocumentId>) -> bool {
        (self.announce)(peer, document)
    }

    async fn access(&self, peer: &PeerId, document: &DocumentId) -> Access {
        (self.access)(peer, document)
    }
}
