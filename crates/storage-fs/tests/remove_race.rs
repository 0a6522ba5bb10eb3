//! Saves and removals of the same documents at once: all of them succeed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::join_all;
use tandem_core::{StorageAdapter, StorageKey};
use tandem_storage_fs::FsStorage;

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
