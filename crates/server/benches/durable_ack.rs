//! What durable acknowledgement costs: the time from a client's change to the server's
//! acknowledgement of it (the client learns that the server's storage holds its heads), with
//! the server acknowledging only after the change is on disk (tandem-server's behaviour), and
//! with the server acknowledging at once and saving later (the JS sync server's behaviour),
//! both on the same file storage in the same run.
//!
//! ```text
//! cargo bench -p tandem-server --bench durable_ack
//! ```
//!
//! Two loads: one client making 300 sequential changes, each waiting for its acknowledgement;
//! and 32 clients doing the same at once (100 changes each), where concurrent saves share one
//! group commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::ROOT;
use futures::StreamExt;
use tandem_core::StorageId;
use tandem_net_ws::{ClientConfig, ServerConfig, WebSocketClient, WebSocketServer};
use tandem_repo::{AskOnly, DocHandle, Repo};
use tandem_storage_fs::FsStorage;

const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        println!(
            "{:<34} {:>8} {:>8} {:>8} {:>12}",
            "", "p50", "p90", "p99", "changes/s"
        );
        for (clients, changes) in [(1, 300), (32, 100)] {
            let mut p50s = Vec::new();
            for durable in [false, true] {
                let (p50, line) = measure(durable, clients, changes).await;
                println!("{line}");
                p50s.push(p50);
            }
            println!(
                "{:<34} p50 durable / immediate = {:.2}×",
                "",
                p50s[1].as_secs_f64() / p50s[0].as_secs_f64()
            );
        }
    });
}

async fn measure(durable: bool, clients: usize, changes: usize) -> (Duration, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let listener = WebSocketServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("address"));
    let storage = FsStorage::open(dir.path()).expect("storage");
    let server = Repo::builder()
        .share_policy(AskOnly)
        .network(listener)
        .shared_storage(Arc::new(storage))
        .durable_acknowledgement(durable)
        .start()
        .await
        .expect("server");
    let storage_id = server.storage_id().expect("a storage id").clone();

    let mut repos = Vec::new();
    for _ in 0..clients {
        repos.push(client(&url).await);
    }
    let started = Instant::now();
    let runs = repos.iter().map(|repo| {
        let storage_id = storage_id.clone();
        async move {
            let (doc, _) = repo
                .create_with(|tx| tx.put(ROOT, "n", 0))
                .await
                .expect("create");
            acknowledged(&doc, &storage_id).await;
            let mut latencies = Vec::with_capacity(changes);
            for i in 0..changes {
                let sent = Instant::now();
                doc.change(|tx| tx.put(ROOT, "n", i as i64))
                    .expect("change")
                    .expect("put");
                acknowledged(&doc, &storage_id).await;
                latencies.push(sent.elapsed());
            }
            latencies
        }
    });
    let mut latencies: Vec<Duration> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let label = format!(
        "{} client{}, {}",
        clients,
        if clients == 1 { "" } else { "s" },
        if durable {
            "ack after fsync"
        } else {
            "ack at once"
        }
    );
    let line = format!(
        "{:<34} {:>8} {:>8} {:>8} {:>12.0}",
        label,
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    for repo in repos {
        repo.shutdown().await;
    }
    server.shutdown().await;
    (at(0.5), line)
}

async fn client(url: &str) -> Repo {
    let adapter = WebSocketClient::new(url, ClientConfig::default()).expect("url");
    let repo = Repo::builder()
        .network(adapter)
        .start()
        .await
        .expect("client");
    repo.wait_for_any_peer(PATIENCE)
        .await
        .expect("the server never became a peer");
    repo
}

/// Waits until the server's storage is known to hold `doc`'s current heads.
async fn acknowledged(doc: &DocHandle, storage: &StorageId) {
    let heads = doc.heads().expect("heads");
    let mut events = Box::pin(doc.remote_heads_changes());
    tokio::time::timeout(PATIENCE, async {
        while doc.remote_heads(storage).map(|e| e.heads) != Some(heads.clone()) {
            events.next().await;
        }
    })
    .await
    .expect("no acknowledgement");
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1e3)
}
