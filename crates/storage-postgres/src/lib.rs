//! # tandem-storage-postgres
//!
//! A [`StorageAdapter`](tandem_core::StorageAdapter) on PostgreSQL, for servers that share one
//! database (a tandem-server cluster) or that keep their data where their operators already
//! back it up. A save is durable when PostgreSQL has committed it; saves arriving together are
//! written in one statement and one commit. The schema is created or upgraded on connect.
//!
//! [`NodeRegistry`] keeps the nodes of a tandem-server cluster in the same database.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tandem_core::{StorageAdapter, StorageKey};
//! use tandem_storage_postgres::PostgresStorage;
//!
//! let storage = PostgresStorage::connect("postgres://tandem@127.0.0.1:5432/tandem").await?;
//! let key = StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "00"]);
//! storage.save(&key, b"bytes".to_vec()).await?;
//! assert_eq!(storage.load(&key).await?, Some(b"bytes".to_vec()));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod error;
mod nodes;
mod save_batch;
mod schema;
mod storage;
#[cfg(feature = "test-server")]
mod test_server;

pub use error::PostgresError;
pub use nodes::{LiveNode, NodeRegistry};
pub use schema::SCHEMA_VERSION;
pub use storage::PostgresStorage;
#[cfg(feature = "test-server")]
pub use test_server::{TestPostgres, TestPostgresError};
