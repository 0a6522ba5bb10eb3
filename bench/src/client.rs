//! The client every scenario uses against every server: tandem repos with a WebSocket client.

use std::collections::HashSet;
use std::time::Duration;

use automerge::{Automerge, ChangeHash};

use futures::StreamExt;
use tandem_core::StorageId;
use tandem_net_ws::{ClientConfig, WebSocketClient};
use tandem_repo::{DocHandle, Repo};

use crate::BenchError;

/// How long any single wait may take before the run is declared stuck.
pub const PATIENCE: Duration = Duration::from_secs(600);

/// A client repo connected to `url`, once the server is its peer; and the server's storage id.
pub async fn connect(url: &str) -> Result<(Repo, Option<StorageId>), BenchError> {
    let adapter = WebSocketClient::new(url, ClientConfig::default())
        .map_err(|e| BenchError::Client(e.to_string()))?;
    let repo = Repo::builder()
        .network(adapter)
        .start()
        .await
        .map_err(|e| BenchError::Client(e.to_string()))?;
    let (_, server) = repo
        .wait_for_any_peer(PATIENCE)
        .await
        .map_err(|e| BenchError::Stuck(format!("connecting: {e}")))?;
    Ok((repo, server.storage_id))
}

/// Waits until the server holds `doc`'s current heads: until the heads its storage id reports
/// include them, as the same heads or as ancestors of heads merged with other clients' changes.
pub async fn acknowledged(doc: &DocHandle, storage: &StorageId) -> Result<(), BenchError> {
    let heads = doc.heads().map_err(|e| BenchError::Client(e.to_string()))?;
    let mut reports = Box::pin(doc.remote_heads_changes());
    // A merged report can name changes this client has yet to receive; it decides once they come.
    let mut changes = Box::pin(doc.changes());
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(reported) = doc.remote_heads(storage) {
                let covered = doc
                    .with_doc(|d| covers(d, &reported.heads, &heads))
                    .map_err(|e| BenchError::Client(e.to_string()))?;
                if covered {
                    return Ok(());
                }
            }
            let more = tokio::select! {
                report = reports.next() => report.is_some(),
                change = changes.next() => change.is_some(),
            };
            if !more {
                return Err(BenchError::Client("the handle went away".into()));
            }
        }
    })
    .await
    .map_err(|_| BenchError::Stuck("waiting for the server's acknowledgement".into()))?
}

/// Whether a document at `reported` heads holds every change up to `ours`. Decided only when `doc`
/// knows every reported head; otherwise false for now.
fn covers(doc: &Automerge, reported: &[ChangeHash], ours: &[ChangeHash]) -> bool {
    if reported == ours {
        return true;
    }
    if reported
        .iter()
        .any(|h| doc.get_change_meta_by_hash(h).is_none())
    {
        return false;
    }
    let after_reported: HashSet<ChangeHash> = doc
        .get_changes_meta(reported)
        .into_iter()
        .map(|change| change.hash)
        .collect();
    ours.iter().all(|h| !after_reported.contains(h))
}

/// Waits until `doc` has `heads`.
pub async fn has_heads(doc: &DocHandle, heads: &[automerge::ChangeHash]) -> Result<(), BenchError> {
    let mut changes = Box::pin(doc.changes());
    tokio::time::timeout(PATIENCE, async {
        loop {
            let now = doc.heads().map_err(|e| BenchError::Client(e.to_string()))?;
            if now == heads {
                return Ok(());
            }
            if changes.next().await.is_none() {
                return Err(BenchError::Client("the handle went away".into()));
            }
        }
    })
    .await
    .map_err(|_| BenchError::Stuck("waiting for a change to arrive".into()))?
}
