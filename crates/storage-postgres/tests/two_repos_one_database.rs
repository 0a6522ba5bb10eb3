//! Two repos on one PostgreSQL database, each with its own connections (as two nodes would
//! share it), lose nothing across edits, compactions, reloads and restarts.

use tandem_repo::shared_store_suite::{self, OpenStore};
use tandem_storage_postgres::{PostgresStorage, TestPostgres};

struct Database(String);

impl OpenStore for Database {
    type Store = PostgresStorage;
    async fn open(&self) -> PostgresStorage {
        PostgresStorage::connect(&self.0).await.expect("connect")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_on_one_database_lose_nothing() {
    let server = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = server.database().await.unwrap();
    shared_store_suite::run_all(&Database(url)).await;
}
