//! The client every scenario uses against every server: tandem repos with a WebSocket client.

use std::time::Duration;

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

/// Waits until the server holds `doc`'s current heads: its storage id's remote heads when it
/// advertises one.
pub async fn acknowledged(doc: &DocHandle, storage: &StorageId) -> Result<(), BenchError> {
    let heads = doc.heads().map_err(|e| BenchError::Client(e.to_string()))?;
    let mut events = Box::pin(doc.remote_heads_changes());
    tokio::time::timeout(PATIENCE, async {
        while doc.remote_heads(storage).map(|e| e.heads) != Some(heads.clone()) {
            if events.next().await.is_none() {
                return Err(BenchError::Client("the handle went away".into()));
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| BenchError::Stuck("waiting for the server's acknowledgement".into()))?
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
