//! Whether heavy work on big documents holds up everyone else: the round trip of a small
//! document through a server repo, measured while the server is quiet and while it loads or
//! receives big documents, in the same run.
//!
//! `cargo bench -p tandem-repo --bench stalls` — `BIG_DOCS` (default 4) text documents of
//! `BIG_CHANGES` (default 20,000) changes of 100 characters each: automerge 0.12 takes about
//! 0.7 s to load or receive one of those at the default size.
//!
//! - The **server** repo runs on its own two-thread runtime, as tandem-server does on two cores,
//!   with in-memory storage that already holds the first set of big documents.
//! - A **pinger** and a **watcher** share a small document through the server, on a third
//!   thread: the pinger changes it, and the watcher's change event ends the round trip. They ping
//!   without pause through every phase.
//! - A **heavy** client on a fourth thread makes the server work:
//!   - *load*: it finds every stored big document at once, so the server loads them all;
//!   - *receive*: the server finds every big document of a second set, which only the heavy
//!     client holds, so the server applies each whole document as it arrives.
//!
//! Each phase reports the round trips that started in it: count, p50, p99, max. A phase's
//! figures are compared with the quiet phase measured just before it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, ObjType, ROOT};
use futures::future::join_all;
use futures::StreamExt;
use tandem_repo::network::memory;
use tandem_repo::{AskOnly, DocHandle, Repo, ShareAll};
use tandem_storage_mem::MemoryStorage;
use tokio::runtime::{Builder, Runtime};

const PATIENCE: Duration = Duration::from_secs(120);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A text typed in `changes` commits of 100 characters; `seed` makes each document distinct.
fn big_doc(changes: usize, seed: usize) -> Automerge {
    let mut doc = AutoCommit::new();
    let text = doc.put_object(ROOT, "text", ObjType::Text).unwrap();
    doc.commit();
    for i in 0..changes {
        let chunk: String = (0..100)
            .map(|j| char::from(b'a' + ((i * 7 + j * 13 + seed) % 26) as u8))
            .collect();
        doc.splice_text(&text, i * 100, 0, &chunk).unwrap();
        doc.commit();
    }
    doc.document().clone()
}

/// A runtime with one thread of its own, which runs its tasks whether or not anyone blocks on it.
fn one_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Round trips: when each started, and how long it took.
type Samples = Arc<Mutex<Vec<(Instant, Duration)>>>;

fn main() {
    let big_docs = env_or("BIG_DOCS", 4);
    let big_changes = env_or("BIG_CHANGES", 20_000);
    let started = Instant::now();
    let stored: Vec<Automerge> = (0..big_docs).map(|s| big_doc(big_changes, s)).collect();
    let held: Vec<Automerge> = (0..big_docs)
        .map(|s| big_doc(big_changes, s + big_docs))
        .collect();
    println!(
        "{big_docs} + {big_docs} documents of {big_changes} changes x 100 characters built in {:.1?}",
        started.elapsed()
    );

    let server_rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ping_rt = one_thread();
    let heavy_rt = one_thread();

    // The stored set, written through a repo as a server would have written it.
    let storage = MemoryStorage::new();
    let stored_ids = server_rt.block_on(async {
        let writer = Repo::builder()
            .storage(storage.clone())
            .start()
            .await
            .unwrap();
        let mut ids = Vec::new();
        for doc in stored {
            ids.push(writer.create(doc).await.unwrap().document_id().clone());
        }
        writer.flush().await.unwrap();
        writer.shutdown().await;
        ids
    });

    let server = server_rt.block_on(
        Repo::builder()
            .storage(storage)
            .share_policy(AskOnly)
            .start(),
    );
    let server = server.unwrap();
    let pinger = ping_rt.block_on(connect(&server, Repo::builder().share_policy(ShareAll)));
    let watcher = ping_rt.block_on(connect(&server, Repo::builder().share_policy(AskOnly)));
    let heavy = heavy_rt.block_on(connect(&server, Repo::builder().share_policy(AskOnly)));
    let held_ids: Vec<_> = heavy_rt.block_on(async {
        let mut ids = Vec::new();
        for doc in held {
            ids.push(heavy.create(doc).await.unwrap().document_id().clone());
        }
        ids
    });

    // Ping without pause until told to stop.
    let samples: Samples = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let pinging = {
        let (samples, stop) = (samples.clone(), stop.clone());
        let (pinger, watcher) = (pinger.clone(), watcher.clone());
        ping_rt.spawn(async move {
            let doc = pinger.create_empty().await.unwrap();
            let seen = watcher.find(doc.url()).await.unwrap();
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                round_trip(&doc, &seen, i).await;
                samples.lock().unwrap().push((began, began.elapsed()));
                i += 1;
            }
        })
    };

    let mut phases = Vec::new();
    let quiet = |label: &'static str| {
        let from = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        (label, from, Instant::now())
    };
    phases.push(quiet("quiet"));
    let from = Instant::now();
    heavy_rt.block_on(async {
        let found = join_all(stored_ids.iter().map(|id| heavy.find(id.clone()))).await;
        for handle in found {
            handle.expect("the server serves the stored document");
        }
    });
    phases.push(("load", from, Instant::now()));
    phases.push(quiet("quiet"));
    let from = Instant::now();
    server_rt.block_on(async {
        let found = join_all(held_ids.iter().map(|id| server.find(id.clone()))).await;
        for handle in found {
            handle.expect("the server receives the document");
        }
    });
    phases.push(("receive", from, Instant::now()));

    stop.store(true, Ordering::Relaxed);
    ping_rt.block_on(pinging).unwrap();
    let samples = samples.lock().unwrap().clone();
    println!("phase | length | round trips | p50 | p99 | max | max / quiet max");
    let mut quiet_max = Duration::ZERO;
    for (label, from, to) in phases {
        let mut took: Vec<Duration> = samples
            .iter()
            .filter(|(began, _)| *began >= from && *began < to)
            .map(|(_, took)| *took)
            .collect();
        took.sort();
        let Some(max) = took.last().copied() else {
            println!("{label} | {:.2?} | 0 | - | - | - | -", to - from);
            continue;
        };
        let pick = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
        if label == "quiet" {
            quiet_max = max;
        }
        println!(
            "{label} | {:.2?} | {} | {:.2?} | {:.2?} | {max:.2?} | {:.1}",
            to - from,
            took.len(),
            pick(0.5),
            pick(0.99),
            max.as_secs_f64() / quiet_max.as_secs_f64()
        );
    }
    heavy_rt.block_on(heavy.shutdown());
    server_rt.block_on(server.shutdown());
}

/// Starts a client repo on the current runtime, linked to `server`.
async fn connect(server: &Repo, client: tandem_repo::RepoBuilder) -> Repo {
    let (left, right, _link) = memory::pair();
    server.add_network(left).await.unwrap();
    let client = client.network(right).start().await.unwrap();
    client
        .wait_for_peer(server.peer_id(), PATIENCE)
        .await
        .unwrap();
    client
}

/// One change on the pinger's handle, until the watcher's handle reports it.
async fn round_trip(doc: &DocHandle, seen: &DocHandle, i: i64) {
    let mut changes = Box::pin(seen.changes());
    doc.change(|tx| tx.put(ROOT, "i", i).unwrap()).unwrap();
    let target = doc.heads().unwrap();
    tokio::time::timeout(PATIENCE, async {
        while seen.heads().unwrap() != target {
            changes.next().await;
        }
    })
    .await
    .expect("the round trip ends");
}
