//! Helpers for repo tests: wiring repos together and waiting on conditions with a timeout.
#![allow(dead_code)]

use std::time::Duration;

use automerge::ChangeHash;
use futures::StreamExt;
use tandem_repo::network::memory::{self, Link};
use tandem_repo::{DocHandle, Repo, RepoBuilder};

/// Every wait in these tests gives up after this long.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Connects two repos (built from the builders) by an in-memory link.
pub async fn connected(a: RepoBuilder, b: RepoBuilder) -> (Repo, Repo, Link) {
    let (left, right, link) = memory::pair();
    let a = a.network(left).start().await.unwrap();
    let b = b.network(right).start().await.unwrap();
    wait_connected(&a, &b).await;
    (a, b, link)
}

/// Joins two running repos with a new link.
pub async fn link(a: &Repo, b: &Repo) -> Link {
    let (left, right, link) = memory::pair();
    a.add_network(left).await.unwrap();
    b.add_network(right).await.unwrap();
    wait_connected(a, b).await;
    link
}

pub async fn wait_connected(a: &Repo, b: &Repo) {
    a.wait_for_peer(b.peer_id(), PATIENCE).await.unwrap();
    b.wait_for_peer(a.peer_id(), PATIENCE).await.unwrap();
}

/// Waits until `handle`'s heads are `heads`, watching its change events.
pub async fn wait_for_heads(handle: &DocHandle, heads: &[ChangeHash]) {
    let mut changes = Box::pin(handle.changes());
    let reached = tokio::time::timeout(PATIENCE, async {
        loop {
            if handle.heads().ok().as_deref() == Some(heads) {
                return;
            }
            // Either a change arrives, or we look again shortly (the handle may have become ready
            // without a change event).
            let _ = tokio::time::timeout(Duration::from_millis(50), changes.next()).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "{} never reached heads {heads:?}; has {:?}",
        handle.document_id(),
        handle.heads()
    );
}

/// Waits until all handles have the same heads, and returns them.
pub async fn wait_converged(handles: &[DocHandle]) -> Vec<ChangeHash> {
    let reached = tokio::time::timeout(PATIENCE, async {
        loop {
            let heads: Vec<_> = handles.iter().map(|h| h.heads().ok()).collect();
            let mut sorted = heads.clone();
            sorted.dedup();
            if sorted.len() == 1 {
                if let Some(Some(heads)) = sorted.pop() {
                    return heads;
                }
            }
            let mut changes =
                futures::stream::select_all(handles.iter().map(|h| Box::pin(h.changes())));
            let _ = tokio::time::timeout(Duration::from_millis(50), changes.next()).await;
        }
    })
    .await;
    reached.expect("handles did not converge")
}
