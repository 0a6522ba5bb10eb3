//! PostgresStorage keeps the StorageAdapter contract on a real PostgreSQL server, reads by
//! prefix through the index, and batches saves made together.

use tandem_core::storage::conformance;
use tandem_core::{StorageAdapter, StorageKey};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_load_reads_an_index_range_not_the_table() {
    let server = server();
    let url = server.database().await.unwrap();
    let store = PostgresStorage::connect(&url).await.unwrap();
    let saves: Vec<_> = (0..2000)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = StorageKey::new([format!("doc{n:05}").as_str(), "incremental", "ab"]);
                store.save(&key, vec![n as u8; 64]).await
            })
        })
        .collect();
    for save in saves {
        save.await.unwrap().unwrap();
    }
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute("ANALYZE tandem_entries")
        .await
        .unwrap();
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT key, value FROM tandem_entries
             WHERE key = $1 OR (key >= $2 AND key < $3)",
            &[&"doc00042", &"doc00042\u{1f}", &"doc00042 "],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Index"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert_eq!(
        store
            .load_range(&StorageKey::new(["doc00042"]))
            .await
            .unwrap()
            .len(),
        1
    );
}
