//! The adapter: one table of keys and values.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tandem_core::storage::text_key::{decode, encode, DocumentQuery, PrefixRange};
use tandem_core::storage::StoredDocument;
use tandem_core::{DocumentId, StorageAdapter, StorageError, StorageKey};
use tokio_postgres::NoTls;
use tokio_postgres::Statement;

use crate::error::failed;
use crate::save_batch::SaveBatcher;
use crate::{schema, PostgresError};

/// Most connections one store opens for loads and removals.
const POOL_SIZE: usize = 16;
/// Connections of the saves' writer, and of the cluster's heartbeat: their own, so that a storm
/// of loads never holds up a save or makes a live node look dead.
const WRITER_POOL_SIZE: usize = 2;
const CONTROL_POOL_SIZE: usize = 1;
/// How long a connection attempt may take before the operation fails (and is retried by the
/// repo, as any storage failure is).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operation waits for a free connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection silent this long is probed (TCP keepalive), every `KEEPALIVE_INTERVAL`, and
/// dropped after `KEEPALIVE_RETRIES` unanswered probes: an idle connection to a vanished server
/// goes within about 25 s.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// Data unacknowledged this long drops the connection (a request sent to a vanished server).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);

/// A store in a PostgreSQL database. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: Pool,
    control: Pool,
    saves: SaveBatcher,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("connections", &self.pool.status().size)
            .finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// PostgreSQL's `key=value` form) and creates or upgrades the schema. Must be called
    /// within a tokio runtime.
    pub async fn connect(url: &str) -> Result<PostgresStorage, PostgresError> {
        Self::open(url, Schema::Upgrade).await
    }

    /// Connects to a database that already holds a store, without creating or upgrading
    /// anything in it: for reading a store out (`tandem-server migrate --from-postgres`), where
    /// a mistyped URL must be refused rather than given empty tables.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), tandem_storage_postgres::PostgresError> {
    /// use tandem_storage_postgres::PostgresStorage;
    ///
    /// let store = PostgresStorage::connect_existing("postgres://tandem@db/tandem").await?;
    /// println!("{} documents", store.first_parts().await?.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_existing(url: &str) -> Result<PostgresStorage, PostgresError> {
        Self::open(url, Schema::AsItIs).await
    }

    async fn open(url: &str, schema: Schema) -> Result<PostgresStorage, PostgresError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(PostgresError::Url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives_idle(KEEPALIVE_IDLE);
        config.keepalives_interval(KEEPALIVE_INTERVAL);
        config.keepalives_retries(KEEPALIVE_RETRIES);
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
        config.application_name("tandem");
        let pool_of = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(WAIT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .build()
        };
        let pool = pool_of(POOL_SIZE)?;
        let control = pool_of(CONTROL_POOL_SIZE)?;
        match schema {
            Schema::Upgrade => schema::migrate(&mut control.get().await?).await?,
            Schema::AsItIs => schema::check(&control.get().await?).await?,
        };
        Ok(PostgresStorage {
            saves: SaveBatcher::start(pool_of(WRITER_POOL_SIZE)?),
            pool,
            control,
        })
    }

    /// The connections loads use, for other tables in the same database.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A connection of its own, for the cluster's heartbeat: a storm of loads never delays it.
    pub fn control_pool(&self) -> &Pool {
        &self.control
    }

    /// The first part of every key stored (document ids, `storage-adapter-id`), sorted: what
    /// a copy of the whole store goes through one at a time. Reads the whole key index.
    pub async fn first_parts(&self) -> Result<Vec<String>, PostgresError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT DISTINCT split_part(key, chr(31), 1) AS first FROM tandem_entries
                 ORDER BY first",
                &[],
            )
            .await?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    /// A connection, and `sql` prepared on it (once per connection: each query is then one
    /// round trip, not two).
    async fn prepared(
        &self,
        key: &StorageKey,
        sql: &str,
    ) -> Result<(Object, Statement), StorageError> {
        let client = self.pool.get().await.map_err(|error| failed(key, &error))?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|error| failed(key, &error))?;
        Ok((client, statement))
    }
}

/// What opening a store does to the database's schema.
enum Schema {
    /// Creates or upgrades it, as a node starting does.
    Upgrade,
    /// Leaves it as it is, and refuses a database with none.
    AsItIs,
}

const LOAD: &str = "SELECT value FROM tandem_entries WHERE key = $1";
const REMOVE: &str = "DELETE FROM tandem_entries WHERE key = $1";
// Two index ranges (the key itself, and the keys under it); `COLLATE "C"` on the column makes
// the comparison bytewise, as `text_key` orders keys.
const LOAD_RANGE: &str = "SELECT key, value FROM tandem_entries
     WHERE key = $1 OR (key >= $2 AND key < $3)";
// A document's tombstone and its two chunk ranges, in one round trip.
const LOAD_DOCUMENT: &str = "SELECT key, value FROM tandem_entries
     WHERE key = $1 OR (key >= $2 AND key < $3) OR (key >= $4 AND key < $5)";
const REMOVE_RANGE: &str = "DELETE FROM tandem_entries
     WHERE key = $1 OR (key >= $2 AND key < $3)";

#[async_trait]
impl StorageAdapter for PostgresStorage {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        let stored = encode(key)?;
        let (client, statement) = self.prepared(key, LOAD).await?;
        let row = client
            .query_opt(&statement, &[&stored])
            .await
            .map_err(|e| failed(key, &e))?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        let stored = encode(key)?;
        self.saves.save(key, stored, value).await
    }

    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
        let stored = encode(key)?;
        let (client, statement) = self.prepared(key, REMOVE).await?;
        client
            .execute(&statement, &[&stored])
            .await
            .map_err(|e| failed(key, &e))?;
        Ok(())
    }

    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let PrefixRange { exact, from, to } = PrefixRange::of(prefix)?;
        let (client, statement) = self.prepared(prefix, LOAD_RANGE).await?;
        let rows = client
            .query(&statement, &[&exact, &from, &to])
            .await
            .map_err(|e| failed(prefix, &e))?;
        Ok(rows
            .into_iter()
            .map(|row| (decode(row.get(0)), row.get(1)))
            .collect())
    }

    async fn load_document(
        &self,
        document_id: &DocumentId,
    ) -> Result<StoredDocument, StorageError> {
        let query = DocumentQuery::of(document_id)?;
        let (client, statement) = self.prepared(&query.tombstone_key, LOAD_DOCUMENT).await?;
        let rows = client
            .query(
                &statement,
                &[
                    &query.tombstone,
                    &query.snapshots.from,
                    &query.snapshots.to,
                    &query.incrementals.from,
                    &query.incrementals.to,
                ],
            )
            .await
            .map_err(|e| failed(&query.tombstone_key, &e))?;
        Ok(query.stored(
            rows.iter()
                .map(|row| (row.get::<_, &str>(0), row.get::<_, Vec<u8>>(1))),
        ))
    }

    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
        let PrefixRange { exact, from, to } = PrefixRange::of(prefix)?;
        let (client, statement) = self.prepared(prefix, REMOVE_RANGE).await?;
        client
            .execute(&statement, &[&exact, &from, &to])
            .await
            .map_err(|e| failed(prefix, &e))?;
        Ok(())
    }
}

#[cfg(all(test, feature = "test-server"))]
mod tests {
    use super::*;
    use crate::TestPostgres;

    /// The plan PostgreSQL makes for `query` with `parameters`.
    async fn plan(
        store: &PostgresStorage,
        query: &str,
        parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> String {
        let client = store.pool().get().await.unwrap();
        let rows = client
            .query(&format!("EXPLAIN {query}"), parameters)
            .await
            .unwrap();
        let lines: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        lines.join("\n")
    }

    /// The statements loads run read index ranges, never the whole table, with the
    /// parameters the store gives them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loads_read_index_ranges_not_the_table() {
        let server = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
        let url = server.database().await.unwrap();
        let store = PostgresStorage::connect(&url).await.unwrap();
        let ids: Vec<DocumentId> = (0..2000).map(|_| DocumentId::random()).collect();
        let saves: Vec<_> = ids
            .iter()
            .map(|id| {
                let key = StorageKey::new([id.to_string().as_str(), "incremental", "ab"]);
                let store = store.clone();
                tokio::spawn(async move { store.save(&key, vec![7; 64]).await })
            })
            .collect();
        for saved in saves {
            saved.await.unwrap().unwrap();
        }
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute("ANALYZE tandem_entries")
            .await
            .unwrap();

        let id = &ids[42];
        let PrefixRange { exact, from, to } =
            PrefixRange::of(&StorageKey::new([id.to_string().as_str()])).unwrap();
        let query = DocumentQuery::of(id).unwrap();
        let plans = [
            plan(&store, LOAD_RANGE, &[&exact, &from, &to]).await,
            plan(&store, REMOVE_RANGE, &[&exact, &from, &to]).await,
            plan(
                &store,
                LOAD_DOCUMENT,
                &[
                    &query.tombstone,
                    &query.snapshots.from,
                    &query.snapshots.to,
                    &query.incrementals.from,
                    &query.incrementals.to,
                ],
            )
            .await,
        ];
        for plan in plans {
            assert!(plan.contains("Index"), "{plan}");
            assert!(!plan.contains("Seq Scan"), "{plan}");
        }
        assert_eq!(store.load_document(id).await.unwrap().chunks.len(), 1);
    }
}
