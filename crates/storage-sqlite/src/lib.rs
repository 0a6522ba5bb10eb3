//! # tandem-storage-sqlite
//!
//! A [`StorageAdapter`] keeping every key in one SQLite file (SQLite is compiled in), for
//! desktop apps that would rather have one file than a directory of them. A save is durable
//! when it returns (write-ahead log, `synchronous = FULL`); several processes may share the
//! file (SQLite's locks order them).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tandem_core::{StorageAdapter, StorageKey};
//! use tandem_storage_sqlite::SqliteStorage;
//!
//! let dir = tempfile::tempdir()?;
//! let storage = SqliteStorage::open(dir.path().join("documents.sqlite"))?;
//! let key = StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "00"]);
//! storage.save(&key, b"bytes".to_vec()).await?;
//! assert_eq!(storage.load(&key).await?, Some(b"bytes".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tandem_core::storage::text_key::{decode, encode, DocumentQuery, PrefixRange};
use tandem_core::storage::StoredDocument;
use tandem_core::{DocumentId, StorageAdapter, StorageError, StorageKey};

/// The schema version this crate writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// How long a write waits for another process holding the file's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A store in one SQLite file. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct SqliteStorage {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Opens (or creates) the store in the file at `path`, creating or upgrading its schema.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStorage, StorageError> {
        let path = path.as_ref().to_path_buf();
        let failed = |error: rusqlite::Error| io_error(StorageKey::new([""; 0]), error);
        let connection = Connection::open(&path).map_err(failed)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
        // Durable on commit, and readers do not wait for the writer.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(failed)?;
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(failed)?;
        if version > SCHEMA_VERSION {
            return Err(io_error(
                StorageKey::new([""; 0]),
                rusqlite::Error::InvalidParameterName(format!(
                    "schema version {version} is newer than this build knows ({SCHEMA_VERSION})"
                )),
            ));
        }
        // `WITHOUT ROWID`: the table is its key's index, so a range by prefix is a range scan of
        // the primary key, never a full scan.
        connection
            .execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)
                     WITHOUT ROWID;
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(failed)?;
        Ok(SqliteStorage {
            connection: Arc::new(Mutex::new(connection)),
            path,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection, off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        key: &StorageKey,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let connection = self.connection.clone();
        let done = tokio::task::spawn_blocking(move || work(&lock(&connection)))
            .await
            .map_err(|_| StorageError::Closed)?;
        done.map_err(|error| io_error(key.clone(), error))
    }
}

fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding it cannot leave the connection half-changed: every statement is
    // its own transaction or rolls back.
    connection
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn io_error(key: StorageKey, error: rusqlite::Error) -> StorageError {
    StorageError::Io {
        key,
        source: std::io::Error::other(error),
    }
}

#[async_trait]
impl StorageAdapter for SqliteStorage {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        let encoded = encode(key)?;
        self.with(key, move |c| {
            c.query_row(
                "SELECT value FROM entries WHERE key = ?1",
                params![encoded],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        let encoded = encode(key)?;
        self.with(key, move |c| {
            c.execute(
                "INSERT INTO entries (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![encoded, value],
            )
            .map(drop)
        })
        .await
    }

    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
        let encoded = encode(key)?;
        self.with(key, move |c| {
            c.execute("DELETE FROM entries WHERE key = ?1", params![encoded])
                .map(drop)
        })
        .await
    }

    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let PrefixRange { exact, from, to } = PrefixRange::of(prefix)?;
        self.with(prefix, move |c| {
            let mut statement = c.prepare_cached(
                "SELECT key, value FROM entries
                 WHERE key = ?1 OR (key >= ?2 AND key < ?3)",
            )?;
            let rows = statement.query_map(params![exact, from, to], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?;
            rows.map(|row| row.map(|(key, value)| (decode(&key), value)))
                .collect()
        })
        .await
    }

    /// One query on the connection's thread: the tombstone's key and both chunk ranges.
    async fn load_document(
        &self,
        document_id: &DocumentId,
    ) -> Result<StoredDocument, StorageError> {
        let query = DocumentQuery::of(document_id)?;
        let key = query.tombstone_key.clone();
        self.with(&key, move |c| {
            let mut statement = c.prepare_cached(
                "SELECT key, value FROM entries
                 WHERE key = ?1 OR (key >= ?2 AND key < ?3) OR (key >= ?4 AND key < ?5)",
            )?;
            let rows = statement
                .query_map(
                    params![
                        query.tombstone,
                        query.snapshots.from,
                        query.snapshots.to,
                        query.incrementals.from,
                        query.incrementals.to
                    ],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?)),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(query.stored(rows))
        })
        .await
    }

    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
        let PrefixRange { exact, from, to } = PrefixRange::of(prefix)?;
        self.with(prefix, move |c| {
            c.execute(
                "DELETE FROM entries WHERE key = ?1 OR (key >= ?2 AND key < ?3)",
                params![exact, from, to],
            )
            .map(drop)
        })
        .await
    }
}
