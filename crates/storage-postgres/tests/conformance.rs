//! PostgresStorage keeps the StorageAdapter contract on a real PostgreSQL server. (That its
//! loads read index ranges, and how saves batch, is tested beside the code.)

use tandem_core::storage::conformance;
use tandem_storage_postgres::{PostgresStorage, TestPostgres};

fn server() -> TestPostgres {
    TestPostgres::start().unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_storage_passes_the_conformance_suite() {
    let server = server();
    let url = server.database().await.unwrap();
    let store = PostgresStorage::connect(&url).await.unwrap();
    // Each check runs to its end before the suite asks for the next store, so one database
    // emptied in between is a fresh store.
    conformance::run_all(|| {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let client = store.pool().get().await.unwrap();
                client
                    .batch_execute("TRUNCATE tandem_entries")
                    .await
                    .unwrap();
            })
        });
        store.clone()
    })
    .await;
}
