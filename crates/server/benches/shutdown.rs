//! How long tandem-server takes to stop with many documents loaded: the SIGTERM path
//! (`Server::shutdown`: save what is unsaved, stop every document task, close sockets).
//!
//! ```text
//! cargo bench -p tandem-server --bench shutdown            # 100,000 documents
//! SHUTDOWN_DOCS=10000 cargo bench -p tandem-server --bench shutdown
//! ```
//!
//! Two stops are measured, each with every document loaded and held: one where everything is
//! already saved, and one right after every document was changed (so the stop saves them all).
//! The reference is the time the same server took to save the same documents during creation.

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::ROOT;
use clap::Parser;
use tandem_server::{Options, Server};

fn main() {
    let documents: usize = std::env::var("SHUTDOWN_DOCS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(documents));
}

async fn start(dir: &std::path::Path) -> Server {
    let options = Options::parse_from([
        "tandem-server",
        "--port",
        "0",
        "--data-dir",
        dir.to_str().expect("a UTF-8 temporary path"),
    ]);
    Server::start(&options).await.expect("the server starts")
}

async fn run(documents: usize) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!(
        "{documents} documents of about 200 bytes, file storage in {}",
        dir.path().display()
    );

    for dirty in [false, true] {
        let server = start(dir.path()).await;
        let repo = server.repo().clone();
        let started = Instant::now();
        let mut handles = Vec::with_capacity(documents);
        for i in 0..documents {
            let (handle, _) = repo
                .create_with(|tx| {
                    tx.put(ROOT, "title", format!("doc {i}"))?;
                    let items = tx.put_object(ROOT, "items", automerge::ObjType::List)?;
                    for n in 0..10_i64 {
                        tx.insert(&items, n as usize, n)?;
                    }
                    Ok::<_, automerge::AutomergeError>(())
                })
                .await
                .expect("create");
            handles.push(handle);
        }
        repo.flush().await.expect("flush");
        let created = started.elapsed();
        if dirty {
            for handle in &handles {
                handle
                    .change(|tx| tx.put(ROOT, "touched", true))
                    .expect("change")
                    .expect("put");
            }
        }
        let stopping = Instant::now();
        server.shutdown().await;
        let stopped = stopping.elapsed();
        println!(
            "{:<28} create+save {:>9}  shutdown {:>9}  ({:.2} µs per document)",
            if dirty {
                "every document unsaved"
            } else {
                "everything already saved"
            },
            ms(created),
            ms(stopped),
            stopped.as_secs_f64() * 1e6 / documents as f64,
        );
        drop(handles);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}
