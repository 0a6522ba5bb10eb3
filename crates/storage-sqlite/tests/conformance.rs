//! SqliteStorage keeps the StorageAdapter contract, and what it stored survives reopening.

use tandem_core::storage::conformance;
use tandem_core::{StorageAdapter, StorageKey};
use tandem_storage_sqlite::SqliteStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_storage_passes_the_conformance_suite() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        SqliteStorage::open(root.path().join(format!("store-{n}.sqlite"))).expect("open")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_saved_is_there_after_reopening() {
    let root = tempfile::tempdir().expect("temp dir");
    let path = root.path().join("store.sqlite");
    let key = StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee", "incremental", "ab"]);
    {
        let store = SqliteStorage::open(&path).unwrap();
        store.save(&key, vec![1, 2, 3]).await.unwrap();
    }
    let store = SqliteStorage::open(&path).unwrap();
    assert_eq!(store.load(&key).await.unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(
        store
            .load_range(&StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee"]))
            .await
            .unwrap(),
        vec![(key, vec![1, 2, 3])]
    );
}
