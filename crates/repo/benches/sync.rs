//! Sync throughput and latency of the runtime against plain automerge in the same run.
//!
//! `cargo bench -p tandem-repo --bench sync` — sizes from `SIZES` (default `1000,10000,100000`).
//!
//! - **floor**: automerge's sync protocol for the same documents, pairwise, in one thread, with
//!   no repo around it: the least work the job can take.
//! - **repo**: repo A holds the documents and, like a sync server, offers nothing unasked; repo
//!   B connects over the in-memory network and finds every one, 1,000 at a time. Timed from the connection to the last document ready with the right heads.
//! - **round trip**: one change on A until B's handle reports it; p50 and p99 over 1,000 changes.
//! - **create**: time per document for the first and the last tenth of 100,000 creations.

use std::time::{Duration, Instant};

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

/// Plain automerge: sync each document into an empty one, message by message.
fn floor(n: usize) -> Duration {
    let docs: Vec<Automerge> = (0..n as i64).map(small_doc).collect();
    let started = Instant::now();
    for doc in &docs {
        let mut ours = doc.clone();
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
        assert_eq!(theirs.get_heads(), doc.get_heads());
    }
    started.elapsed()
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
    println!(
        "{:>8} {:>12} {:>12} {:>8} {:>14}",
        "docs", "floor", "repo", "ratio", "repo per doc"
    );
    for &n in &sizes {
        let floor = floor(n);
        let repo = runtime.block_on(repo_sync(n));
        println!(
            "{n:>8} {:>12.3?} {:>12.3?} {:>7.2}x {:>14.2?}",
            floor,
            repo,
            repo.as_secs_f64() / floor.as_secs_f64(),
            repo / n as u32
        );
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
