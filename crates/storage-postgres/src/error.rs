//! What can go wrong reaching the database.

use tandem_core::{StorageError, StorageKey};

/// Connecting to PostgreSQL or preparing its schema failed.
///
/// Its text ends with its causes' ([`tokio_postgres::Error`]'s own names only the kind of
/// failure), so a reporter that also prints the source chain shows them twice.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The connection URL is not one PostgreSQL accepts.
    #[error("invalid PostgreSQL URL: {}", describe(.0))]
    Url(#[source] tokio_postgres::Error),
    /// The connection pool could not be built.
    #[error("cannot build the PostgreSQL connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    /// No connection could be had from the pool (the server is down, refuses us, or is full).
    #[error("cannot connect to PostgreSQL: {}", describe(.0))]
    Connect(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("PostgreSQL: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    /// PostgreSQL did not answer in time.
    #[error("PostgreSQL did not answer in time")]
    TimedOut,
    /// The database holds no tandem store (no schema table): asked to read one, nothing is
    /// created there.
    #[error("the database holds no tandem store (is the URL's database name right?)")]
    NoStore,
    /// A newer build has upgraded the database; this one would misread it.
    #[error("the database's schema is version {found}, newer than this build knows ({known})")]
    NewerSchema {
        /// The version in the database.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
}

/// An error's text followed by its causes' that it does not already say.
///
/// `tokio_postgres::Error` says only what kind of failure it was ("db error", "error connecting
/// to server"); what the server answered ("database \"x\" does not exist") or why the
/// connection failed is its source, which an operator needs to see.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let said = error.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = error.source();
    }
    text
}

/// A failed read, write or removal of `key`, saying its causes (see [`describe`]).
pub(crate) fn failed(key: &StorageKey, error: &(dyn std::error::Error + 'static)) -> StorageError {
    StorageError::Io {
        key: key.clone(),
        source: std::io::Error::other(describe(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("db error")]
    struct Kind(#[source] std::io::Error);

    #[test]
    fn describe_says_the_cause_once() {
        let error = Kind(std::io::Error::other(
            "FATAL: database \"x\" does not exist",
        ));
        assert_eq!(
            describe(&error),
            "db error: FATAL: database \"x\" does not exist"
        );
        let key = StorageKey::new(["doc", "snapshot", "h"]);
        let failure = failed(&key, &error).to_string();
        assert!(
            failure.contains("db error: FATAL: database \"x\" does not exist"),
            "{failure}"
        );
    }
}
