//! A client that syncs one document with a running server and prints its changes as they
//! arrive (Ctrl-C to stop).
//!
//! ```sh
//! cargo run --release -p tandem-server &            # or a JS automerge-repo sync server
//! cargo run --example follow -- ws://127.0.0.1:3030 automerge:…
//! ```
//!
//! Without a document URL it creates one and prints its URL, so two terminals can follow the
//! same document.

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use futures::StreamExt;
use tandem::net_ws::{ClientConfig, ConnectionState, WebSocketClient};
use tandem::Repo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:3030".to_owned());
    let document = args.next();

    let client = WebSocketClient::new(server.as_str(), ClientConfig::default())?;
    let mut states = client.states();
    let repo = Repo::builder().network(client).start().await?;
    tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let state = states.borrow().clone();
            eprintln!("[connection: {state:?}]");
            if matches!(state, ConnectionState::Stopped(_)) {
                return;
            }
        }
    });
    repo.peer_changes()
        .wait_for(|peers| !peers.is_empty())
        .await?;

    let handle = match document {
        Some(url) => repo.find(url.as_str()).await?,
        None => {
            let (handle, _) = repo
                .create_with(|tx| tx.put(ROOT, "created_by", "tandem follow"))
                .await?;
            println!("created {}", handle.url());
            handle
        }
    };
    let keys = handle.with_doc(|d| d.keys(ROOT).collect::<Vec<_>>())?;
    println!("{} has keys {keys:?}; following its changes", handle.url());

    let mut changes = Box::pin(handle.changes());
    loop {
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else { break };
                println!("change from {:?}:", change.origin);
                for patch in change.patches.iter() {
                    println!("  {:?} {:?}", patch.path, patch.action);
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    repo.shutdown().await;
    Ok(())
}
