//! What can go wrong reaching the database.

/// Connecting to PostgreSQL or preparing its schema failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The connection URL is not one PostgreSQL accepts.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The connection pool could not be built.
    #[error("cannot build the PostgreSQL connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    /// No connection could be had from the pool (the server is down, refuses us, or is full).
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// PostgreSQL did not answer in time.
    #[error("PostgreSQL did not answer in time")]
    TimedOut,
    /// A newer build has upgraded the database; this one would misread it.
    #[error("the database's schema is version {found}, newer than this build knows ({known})")]
    NewerSchema {
        /// The version in the database.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
}
