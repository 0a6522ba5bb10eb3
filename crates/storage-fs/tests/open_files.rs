//! Thousands of concurrent saves and loads keep the store's open files within its bound.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_racing_remove_range_all_succeed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = FsStorage::open(dir.path()).expect("open");
    let doc = |d: usize| format!("racing{d:03}xxxxxxxxxxxxxxxxxxxx");
    let removing = Arc::new(AtomicBool::new(true));
    // One task removes the documents' directories over and over while the saves run.
    let remover = {
        let (store, removing) = (store.clone(), removing.clone());
        tokio::spawn(async move {
            let mut removed = 0usize;
            while removing.load(Ordering::Relaxed) {
                for d in 0..20 {
                    store
                        .remove_range(&StorageKey::new([doc(d)]))
                        .await
                        .expect("remove_range");
                    removed += 1;
                }
            }
            removed
        })
    };
    let saves = (0..4_000).map(|i| {
        let store = store.clone();
        let key = StorageKey::new([doc(i % 20), "incremental".to_string(), format!("{i:064x}")]);
        async move { store.save(&key, vec![1; 100]).await }
    });
    let saved = join_all(saves).await;
    removing.store(false, Ordering::Relaxed);
    let removed = remover.await.expect("remover");
    let failed: Vec<_> = saved.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of 4,000 saves failed while {removed} removals ran, the first: {}",
        failed.len(),
        failed[0]
    );
}
