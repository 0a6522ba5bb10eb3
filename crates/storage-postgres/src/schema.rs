//! The tables this crate keeps, created or upgraded when a node starts.
//!
//! Every step runs in one transaction holding an advisory lock, so nodes started together on
//! an empty database wait for one another instead of racing to create the same tables.

use deadpool_postgres::{GenericClient, Object};

use tandem_core::storage::STORAGE_ADAPTER_ID;
use tandem_core::StorageId;

use crate::PostgresError;

/// Names the advisory lock the migrations hold (any constant no other tool uses).
const MIGRATION_LOCK: i64 = 0x7461_6e64_656d_0001;

/// The schema versions, in order; version `n` is `MIGRATIONS[n - 1]`. Released versions are
/// never edited: a change is a new entry.
const MIGRATIONS: &[&str] = &[
    // 1: documents' chunks, keyed by `text_key` (byte order, so a prefix is one index range).
    "CREATE TABLE tandem_entries (
         key text COLLATE \"C\" PRIMARY KEY,
         value bytea NOT NULL
     )",
    // 2: the cluster's nodes (by peer id) and when each last said it was alive (the
    // database's clock, so that nodes' clocks need not agree).
    "CREATE TABLE tandem_nodes (
         id text PRIMARY KEY,
         advertise text NOT NULL,
         last_seen timestamptz NOT NULL
     )",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the database's schema to [`SCHEMA_VERSION`], and gives the store its id if it has
/// none; refuses a database a newer build has upgraded. Returns the version found before.
pub(crate) async fn migrate(client: &mut Object) -> Result<i32, PostgresError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS tandem_schema (version integer NOT NULL)")
        .await?;
    let found = version(&transaction).await?;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        transaction.batch_execute(step).await?;
        let version = index as i32 + 1;
        transaction
            .execute(
                "INSERT INTO tandem_schema (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        tracing::info!(version, "database schema upgraded");
    }
    // Made here, under the lock, if missing: servers started together on an empty database
    // would otherwise each make one, and all but the last would announce an id the store
    // does not hold.
    let id = StorageId::random();
    transaction
        .execute(
            "INSERT INTO tandem_entries (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&STORAGE_ADAPTER_ID, &id.as_str().as_bytes()],
        )
        .await?;
    transaction.commit().await?;
    Ok(found)
}

/// The database's schema version, leaving everything as it is; refuses a database with no
/// store in it and one a newer build has upgraded. Any version this build knows holds the
/// documents' table, so an older store can be read without upgrading it.
pub(crate) async fn check(client: &Object) -> Result<i32, PostgresError> {
    let has_schema: bool = client
        .query_one("SELECT to_regclass('tandem_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !has_schema {
        return Err(PostgresError::NoStore);
    }
    let found = version(client).await?;
    if found == 0 {
        return Err(PostgresError::NoStore);
    }
    Ok(found)
}

/// The version `tandem_schema` records (0 for none); refuses one newer than this build's.
async fn version(client: &impl GenericClient) -> Result<i32, PostgresError> {
    let found: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM tandem_schema", &[])
        .await?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(PostgresError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(found)
}
