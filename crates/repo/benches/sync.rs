//! Sync throughput and latency of the runtime against plain automerge in the same run.
//!
//! `cargo bench -p tandem-repo --bench sync` — sizes from `SIZES` (default `1000,10000,100000`);
//! `SYNC_ONLY=1` runs only the sync comparison (for profiling); `REPEAT` (default 3) runs each
//! side that many times, alternating, and reports the medians.
//!
//! - **floor**: automerge's sync protocol for the same documents, pairwise, in one thread, with
//!   no repo around it: the least work the job can take.
//! - **repo**: repo A holds the documents and, like a sync server, offers nothing unasked; repo
//!   B connects over the in-memory network and finds every one, 1,000 at a time. Timed from the connection to the last document ready with the right heads.
//! - **round trip**: one change on A until B's handle reports it; p50 and p99 over 1,000 changes.
//! - **create**: time per document for the first and the last tenth of 100,000 creations.

use std::time::{Duration, Instant};

// The allocator tandem-server runs with. glibc's malloc grows and trims its per-thread heaps
// over and over under this load (an mprotect and page faults per step): it doubles the repo's
// time. Floor and repo share the allocator, so the ratio compares like with like.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use automerge::sync::{State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use futures::future::join_all;
use futures::StreamExt;
use tandem_repo::network::memory;
use tandem_repo::{AskOnly, Repo};

fn small_doc(i: i64) -> Automerge {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "n", i).unwrap();
    tx.put(ROOT, "title", "a small document").unwrap();
    tx.commit();
    doc
}

/// Plain automerge: sync each document into an empty one, message by message. Like the repos,
/// both sides keep what they hold: A its documents, B every copy it received (so the floor, too,
/// pays for memory that grows rather than one document's worth reused N times).
fn floor(n: usize) -> Duration {
    let mut docs: Vec<Automerge> = (0..n as i64).map(small_doc).collect();
    let mut received = Vec::with_capacity(n);
    let started = Instant::now();
    for ours in &mut docs {
        let mut theirs = Automerge::new();
        let (mut ours_state, mut their_state) = (State::new(), State::new());
        loop {
            let mut quiet = true;
            if let Some(m) = ours.generate_sync_message(&mut ours_state) {
                theirs.receive_sync_message(&mut their_state, m).unwrap();
                quiet = false;
            }
            if let Some(m) = theirs.generate_sync_message(&mut their_state) {
                ours.receive_sync_message(&mut ours_state, m).unwrap();
                quiet = false;
            }
            if quiet {
                break;
            }
        }
        assert_eq!(theirs.get_heads(), ours.get_heads());
        received.push(theirs);
    }
    let elapsed = started.elapsed();
    drop(received);
    elapsed
}

async fn repo_sync(n: usize) -> Duration {
    // A serves what is asked (a sync server's policy); B asks for everything.
    let a = Repo::builder().share_policy(AskOnly).start().await.unwrap();
    let mut docs = Vec::with_capacity(n);
    for i in 0..n as i64 {
        docs.push(a.create(small_doc(i)).await.unwrap());
    }
    let b = Repo::builder().share_policy(AskOnly).start().await.unwrap();
    let started = Instant::now();
    let (left, right, _link) = memory::pair();
    a.add_network(left).await.unwrap();
    b.add_network(right).await.unwrap();
    b.wait_for_peer(a.peer_id(), Duration::from_secs(60))
        .await
        .unwrap();
    for chunk in docs.chunks(1000) {
        let found = join_all(chunk.iter().map(|d| b.find(d.document_id()))).await;
        for (doc, at_b) in chunk.iter().zip(found) {
            let at_b = at_b.unwrap_or_else(|e| panic!("after {:?}: {e}", started.elapsed()));
            assert_eq!(at_b.heads().unwrap(), doc.heads().unwrap());
        }
    }
    let elapsed = started.elapsed();
    a.shutdown().await;
    b.shutdown().await;
    elapsed
}

async fn round_trip() -> (Duration, Duration) {
    let (left, right, _link) = memory::pair();
    let a = Repo::builder().network(left).start().await.unwrap();
    let b = Repo::builder().network(right).start().await.unwrap();
    b.wait_for_peer(a.peer_id(), Duration::from_secs(60))
        .await
        .unwrap();
    let doc = a.create_empty().await.unwrap();
    let at_b = b.find(doc.url()).await.unwrap();
    let mut changes = Box::pin(at_b.changes());
    let mut samples = Vec::with_capacity(1000);
    for i in 0..1000i64 {
        let started = Instant::now();
        doc.change(|tx| tx.put(ROOT, "i", i).unwrap()).unwrap();
        let target = doc.heads().unwrap();
        while let Some(change) = changes.next().await {
            if change.heads == target {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    a.shutdown().await;
    b.shutdown().await;
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

async fn creation(n: usize) -> (Duration, Duration) {
    let repo = Repo::builder().start().await.unwrap();
    let tenth = n / 10;
    let mut first = Duration::ZERO;
    let mut last = Duration::ZERO;
    for i in 0..n {
        let started = Instant::now();
        repo.create_empty().await.unwrap();
        let took = started.elapsed();
        if i < tenth {
            first += took;
        } else if i >= n - tenth {
            last += took;
        }
    }
    repo.shutdown().await;
    (first / tenth as u32, last / tenth as u32)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Medians of alternating runs: the machine's noise (a shared VM) hits both sides alike.
    let repeat: usize = std::env::var("REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!(
        "{:>8} {:>12} {:>12} {:>8} {:>14} {:>14}",
        "docs", "floor", "repo", "ratio", "floor per doc", "repo per doc"
    );
    // One untimed round first: the first run in a process pays for cold caches and a heap
    // that has never been touched.
    if let Some(&smallest) = sizes.iter().min() {
        floor(smallest);
        runtime.block_on(async { tokio::spawn(repo_sync(smallest)).await.unwrap() });
    }
    for &n in &sizes {
        let mut floors = Vec::with_capacity(repeat);
        let mut repos = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            floors.push(floor(n));
            // Inside the runtime, as an application runs: its worker threads do the waiting.
            repos.push(runtime.block_on(async { tokio::spawn(repo_sync(n)).await.unwrap() }));
        }
        let (floor, repo) = (median(floors), median(repos));
        println!(
            "{n:>8} {:>12.3?} {:>12.3?} {:>7.2}x {:>14.2?} {:>14.2?}",
            floor,
            repo,
            repo.as_secs_f64() / floor.as_secs_f64(),
            floor / n as u32,
            repo / n as u32
        );
    }
    // `SYNC_ONLY=1` stops here, so that a profile of the sync phase is not diluted.
    if std::env::var_os("SYNC_ONLY").is_some() {
        return;
    }
    let (p50, p99) = runtime.block_on(round_trip());
    println!("round trip of one change A→B: p50 {p50:.1?}, p99 {p99:.1?}");
    let n = sizes.iter().copied().max().unwrap_or(100_000).max(10_000);
    let (first, last) = runtime.block_on(creation(n));
    println!(
        "create {n} documents: first tenth {first:.1?}/doc, last tenth {last:.1?}/doc ({:.2}x)",
        last.as_secs_f64() / first.as_secs_f64()
    );
}
