//! Where a loaded document's memory goes: bytes allocated per document by automerge alone
//! (`Automerge::load`), by a repo holding documents it made, and by a server repo holding
//! documents a client sent it (both repos in this process).
//!
//! `cargo run --release -p tandem-repo --example memory_per_document -- 10000`
//! (`MEMORY_TRACE_SIZE=308` also prints where the pair's first allocations of 308 bytes come from)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ScalarValue, ROOT};
use tandem_repo::Repo;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
const EXACT: usize = 16384;
static BY_SIZE: [AtomicIsize; EXACT + 1] = [const { AtomicIsize::new(0) }; EXACT + 1];

fn bucket(size: usize) -> &'static AtomicIsize {
    &BY_SIZE[size.min(EXACT)]
}

/// `MEMORY_TRACE_SIZE=n`: print where the first few allocations of exactly `n` bytes come from
/// (set by `main`; 0 traces nothing).
static TRACE_SIZE: AtomicIsize = AtomicIsize::new(0);
static TRACED: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Set while a backtrace is taken, whose own allocations must not be traced.
    static TRACING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn trace(size: usize) {
    if TRACE_SIZE.load(Ordering::Relaxed) != size as isize || TRACING.with(|t| t.replace(true)) {
        return;
    }
    if TRACED.fetch_add(1, Ordering::Relaxed) < 3 {
        eprintln!(
            "{size} B from:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
    }
    TRACING.with(|t| t.set(false));
}

// SAFETY: passes every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        trace(layout.size());
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        bucket(layout.size()).fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        bucket(layout.size()).fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        bucket(layout.size()).fetch_sub(1, Ordering::Relaxed);
        bucket(new_size).fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn fill(tx: &mut impl Transactable, i: usize) {
    tx.put(ROOT, "title", format!("doc {i}")).unwrap();
    let items = tx.put_object(ROOT, "items", ObjType::List).unwrap();
    tx.splice(&items, 0, 0, (0..10_i64).map(ScalarValue::from))
        .unwrap();
}

fn sizes() -> Vec<isize> {
    BY_SIZE.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

/// The allocation sizes holding the most bytes that appeared since `before`, per document.
fn top_sizes(before: &[isize], count: usize) {
    let mut grown: Vec<(usize, isize)> = sizes()
        .iter()
        .zip(before)
        .enumerate()
        .map(|(size, (now, then))| (size, now - then))
        .filter(|(_, n)| *n > 0)
        .collect();
    grown.sort_by_key(|(size, n)| -(*size as isize * n));
    for (size, n) in grown.iter().take(25) {
        println!(
            "    {size:>6} B x {:.2}/doc = {:.0} B/doc",
            *n as f64 / count as f64,
            (*size as isize * n) as f64 / count as f64
        );
    }
}

fn per_doc(before: isize, count: usize) -> f64 {
    (live() - before) as f64 / count as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let saved: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut doc = Automerge::new();
            let mut tx = doc.transaction();
            fill(&mut tx, i);
            tx.commit();
            doc.save()
        })
        .collect();

    let before = live();
    let shape = sizes();
    let loaded: Vec<Automerge> = saved.iter().map(|b| Automerge::load(b).unwrap()).collect();
    println!(
        "automerge load:         {:8.0} B/doc",
        per_doc(before, count)
    );
    top_sizes(&shape, count);
    drop(loaded);

    let before = live();
    let mut received = Vec::with_capacity(count);
    for bytes in &saved {
        let source = Automerge::load(bytes).unwrap();
        let mut doc = Automerge::new();
        doc.apply_changes(source.get_changes(&[])).unwrap();
        received.push(doc);
    }
    println!(
        "automerge applied:      {:8.0} B/doc",
        per_doc(before, count)
    );
    drop(received);

    let baseline = live();
    let repo = Repo::builder()
        .storage(tandem_storage_mem::MemoryStorage::new())
        .start()
        .await
        .unwrap();
    let before = live();
    let shape = sizes();
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let (handle, _) = repo.create_with(|tx| fill(tx, i)).await.unwrap();
        handles.push(handle);
    }
    repo.flush().await.unwrap();
    let alone = per_doc(before, count);
    println!("repo created, held:     {alone:8.0} B/doc");
    top_sizes(&shape, count);
    drop(handles);
    println!(
        "repo created, released: {:8.0} B/doc",
        per_doc(before, count)
    );
    repo.shutdown().await;
    drop(repo);
    // The documents' tasks end after `shutdown` returns: wait until what they held is freed,
    // or the pair below would be measured while it shrinks.
    let freed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while live() > baseline + (count as isize) * 256 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    if freed.is_err() {
        println!(
            "(the first repo still holds {:.0} B/doc; the figures below include it)",
            per_doc(baseline, count)
        );
    }

    let (left, right, _link) = tandem_repo::network::memory::pair();
    let server = Repo::builder()
        .storage(tandem_storage_mem::MemoryStorage::new())
        .network(left)
        .start()
        .await
        .unwrap();
    // With storage, as the server: a repo compacts a document's memory once it is saved.
    let client = Repo::builder()
        .storage(tandem_storage_mem::MemoryStorage::new())
        .network(right)
        .start()
        .await
        .unwrap();
    client
        .wait_for_any_peer(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let before_client = live();
    let pair_shape = sizes();
    if let Some(size) = std::env::var("MEMORY_TRACE_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        TRACE_SIZE.store(size, Ordering::Relaxed);
    }
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let (handle, _) = client.create_with(|tx| fill(tx, i)).await.unwrap();
        handles.push(handle);
    }
    for handle in &handles {
        server.find(handle.document_id()).await.unwrap();
    }
    client.flush().await.unwrap();
    server.flush().await.unwrap();
    // Both repos hold each document with the other as its peer: what a peer adds to a
    // document, on each side, is half of what the pair holds beyond two documents held alone
    // (its sync state in memory, and in the in-memory store the sync state saved for it).
    let pair = per_doc(before_client, count);
    println!("client + server:        {pair:8.0} B/doc");
    top_sizes(&pair_shape, count);
    println!(
        "a peer, on each side:   {:8.0} B/doc",
        (pair - 2.0 * alone) / 2.0
    );
    drop(handles);
    client.shutdown().await;
    server.shutdown().await;
}
