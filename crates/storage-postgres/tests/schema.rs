//! The schema and the store's id are created once however many nodes start together, and a
//! database a newer build has upgraded is refused rather than misread.

use tandem_core::StorageAdapter;
use tandem_storage_postgres::{PostgresError, PostgresStorage, TestPostgres, SCHEMA_VERSION};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_together_on_an_empty_database_all_come_up() {
    let server = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = server.database().await.unwrap();
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStorage::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().expect("every node comes up"));
    }
    let client = stores[0].pool().get().await.unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM tandem_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    // One store id, made once: every node reads the same.
    let key = tandem_core::StorageKey::storage_adapter_id();
    let first = stores[0].load(&key).await.unwrap().expect("an id");
    for store in &stores {
        assert_eq!(store.load(&key).await.unwrap().as_ref(), Some(&first));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_build_is_refused() {
    let server = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = server.database().await.unwrap();
    let store = PostgresStorage::connect(&url).await.unwrap();
    let client = store.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO tandem_schema (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    match PostgresStorage::connect(&url).await {
        Err(PostgresError::NewerSchema { found, known }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match PostgresStorage::connect_existing(&url).await {
        Err(PostgresError::NewerSchema { .. }) => {}
        other => panic!("expected a refusal to read it, got {other:?}"),
    }
}

/// Reading a store needs one there: an empty database is refused, and left empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_read_needs_a_store_and_changes_nothing() {
    let server = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = server.database().await.unwrap();
    match PostgresStorage::connect_existing(&url).await {
        Err(PostgresError::NoStore) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    let tables = TestPostgres::tables_in(&url).await.unwrap();
    assert_eq!(tables, 0, "the refused read created tables");
    let store = PostgresStorage::connect(&url).await.unwrap();
    let versions: i64 = store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM tandem_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        versions,
        i64::from(SCHEMA_VERSION),
        "the refused read wrote a version"
    );
    PostgresStorage::connect_existing(&url).await.unwrap();
}

/// Nodes see each other once each has beaten, stop seeing one that stops beating, and a node
/// that leaves is gone at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_see_each_other_while_they_beat() {
    use std::time::Duration;
    use tandem_storage_postgres::NodeRegistry;
    let server = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let url = server.database().await.unwrap();
    let store = PostgresStorage::connect(&url).await.unwrap();
    let alive = Duration::from_secs(5);
    let a = NodeRegistry::new(&store, "a", "ws://127.0.0.1:1", alive);
    let b = NodeRegistry::new(&store, "b", "ws://127.0.0.1:2", alive);
    assert!(a.heartbeat().await.unwrap().is_empty());
    let seen_by_b = b.heartbeat().await.unwrap();
    assert_eq!(seen_by_b.len(), 1);
    assert_eq!(
        (seen_by_b[0].id.as_str(), seen_by_b[0].advertise.as_str()),
        ("a", "ws://127.0.0.1:1")
    );
    // `a` last beat 10 s ago (by the database's clock): no longer alive.
    let client = store.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE tandem_nodes SET last_seen = now() - interval '10 seconds' WHERE id = 'a'",
            &[],
        )
        .await
        .unwrap();
    assert!(b.heartbeat().await.unwrap().is_empty());
    assert_eq!(a.heartbeat().await.unwrap().len(), 1);
    assert_eq!(b.heartbeat().await.unwrap().len(), 1);
    a.leave().await.unwrap();
    assert!(b.heartbeat().await.unwrap().is_empty());
}
