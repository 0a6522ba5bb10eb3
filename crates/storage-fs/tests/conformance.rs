//! FsStorage keeps the StorageAdapter contract.

use tandem_core::storage::conformance;
use tandem_storage_fs::FsStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_storage_passes_the_conformance_suite() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        FsStorage::open(root.path().join(format!("store-{n}"))).expect("open")
    })
    .await;
}
