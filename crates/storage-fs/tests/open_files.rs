//! Thousands of concurrent saves and loads keep the store's open files within its bound. (This
//! binary holds one test: it counts the whole process's open files, so a test running beside it
//! under `cargo test` would count too.)

#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::join_all;
use tandem_core::{StorageAdapter, StorageKey};
use tandem_storage_fs::FsStorage;

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_and_loads_open_a_bounded_number_of_files() {
    const CONCURRENCY: usize = 4;
    const SAVES: usize = 3_000;
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = FsStorage::open_with_concurrency(dir.path(), CONCURRENCY).expect("open");
    let before = open_files();

    // A thread counts this process's open files for as long as the saves run.
    let running = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (running, most) = (running.clone(), most.clone());
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                most.fetch_max(open_files(), Ordering::Relaxed);
            }
        })
    };
    let key = |i: usize| {
        StorageKey::new([
            format!("doc{:05}xxxxxxxxxxxxxxxxxxxxx", i % 500),
            "incremental".to_string(),
            format!("{i:064x}"),
        ])
    };
    let saves = (0..SAVES).map(|i| {
        let store = store.clone();
        async move { store.save(&key(i), vec![i as u8; 300]).await }
    });
    let loads = (0..SAVES).map(|i| {
        let store = store.clone();
        async move { store.load(&key(i)).await.map(|_| ()) }
    });
    let (saved, loaded) = tokio::join!(join_all(saves), join_all(loads));
    running.store(false, Ordering::Relaxed);
    watcher.join().expect("watcher");

    assert!(saved.iter().chain(&loaded).all(Result::is_ok));
    for i in (0..SAVES).step_by(97) {
        assert_eq!(store.load(&key(i)).await.unwrap(), Some(vec![i as u8; 300]));
    }
    // Loads hold at most CONCURRENCY files, saves awaiting commit at most 4 × CONCURRENCY; the
    // watcher's own directory handle is one more.
    let extra = most.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        extra <= 5 * CONCURRENCY + 1,
        "{extra} files open at once beyond the {before} before the saves"
    );
}
