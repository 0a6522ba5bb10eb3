//! A repo embedded in a small service: it serves automerge-repo clients (JS or Rust) over
//! WebSocket, stores documents in a folder, and keeps a `status` document of its own that it
//! updates every second. Clients find the status document by the URL it prints.
//!
//! ```sh
//! cargo run --example embedded_service -- 127.0.0.1:3031 ./service-data
//! ```

use std::time::Duration;

use automerge::{transaction::Transactable, ScalarValue, ROOT};
use tandem::net_ws::{ServerConfig, WebSocketServer};
use tandem::storage_fs::FsStorage;
use tandem::{AskOnly, Repo};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3031".to_owned());
    let folder = args.next().unwrap_or_else(|| "./service-data".to_owned());

    let server = WebSocketServer::bind(address.as_str(), ServerConfig::default()).await?;
    println!("serving ws://{}", server.local_addr()?);
    let repo = Repo::builder()
        .storage(FsStorage::open(&folder)?)
        .share_policy(AskOnly)
        .durable_acknowledgement(true)
        .network(server)
        .start()
        .await?;

    let (status, _) = repo
        .create_with(|tx| -> Result<(), automerge::AutomergeError> {
            tx.put(ROOT, "service", "embedded_service example")?;
            tx.put(ROOT, "ticks", ScalarValue::counter(0))?;
            Ok(())
        })
        .await?;
    println!("status document: {}", status.url());

    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every_second.tick() => {
                status.change(|tx| tx.increment(ROOT, "ticks", 1))??;
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("saving and stopping");
    repo.shutdown().await;
    Ok(())
}
