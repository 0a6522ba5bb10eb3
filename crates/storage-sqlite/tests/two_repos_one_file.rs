//! Two repos on one SQLite file (as two processes would share it) lose nothing across edits,
//! compactions, reloads and restarts.

use std::path::PathBuf;

use tandem_repo::shared_store_suite::{self, OpenStore};
use tandem_storage_sqlite::SqliteStorage;

struct File(PathBuf);

impl OpenStore for File {
    type Store = SqliteStorage;
    async fn open(&self) -> SqliteStorage {
        SqliteStorage::open(&self.0).expect("open")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_on_one_file_lose_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    shared_store_suite::run_all(&File(dir.path().join("shared.sqlite"))).await;
}
