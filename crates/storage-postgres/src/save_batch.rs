//! Saves arriving together are written by one statement in one transaction: under load a
//! commit (one WAL flush) carries many saves instead of one.
//!
//! One writer takes every save in the order they were made, so two saves of one key commit in
//! that order. While a batch commits, the next one gathers.

use std::collections::HashMap;

use deadpool_postgres::Pool;
use tandem_core::{StorageError, StorageKey};
use tokio::sync::{mpsc, oneshot};

use crate::error::{describe, failed};

/// Saves waiting for the writer; callers wait for room beyond this.
const QUEUE: usize = 4096;
/// Most saves in one statement.
const MAX_BATCH: usize = 512;
/// Most bytes in one statement (a save larger than this goes alone).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

const UPSERT_MANY: &str = "INSERT INTO tandem_entries (key, value)
     SELECT * FROM unnest($1::text[], $2::bytea[])
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";

/// The saves' side of the writer.
#[derive(Clone)]
pub(crate) struct SaveBatcher {
    queue: mpsc::Sender<PendingSave>,
}

struct PendingSave {
    key: StorageKey,
    stored: String,
    value: Vec<u8>,
    done: oneshot::Sender<Result<(), StorageError>>,
}

impl SaveBatcher {
    /// Starts the writer on the current tokio runtime; it stops when every clone is dropped.
    pub(crate) fn start(pool: Pool) -> SaveBatcher {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool, pending));
        SaveBatcher { queue }
    }

    /// Saves `value` under `key` (stored as `stored`); returns once committed.
    pub(crate) async fn save(
        &self,
        key: &StorageKey,
        stored: String,
        value: Vec<u8>,
    ) -> Result<(), StorageError> {
        let (done, committed) = oneshot::channel();
        let save = PendingSave {
            key: key.clone(),
            stored,
            value,
            done,
        };
        self.queue
            .send(save)
            .await
            .map_err(|_| StorageError::Closed)?;
        committed.await.map_err(|_| StorageError::Closed)?
    }
}

/// `first` and the saves already waiting behind it, up to [`MAX_BATCH`] saves and about
/// [`MAX_BATCH_BYTES`]: one statement's worth.
fn gather(first: PendingSave, pending: &mut mpsc::Receiver<PendingSave>) -> Vec<PendingSave> {
    let mut bytes = first.value.len();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        match pending.try_recv() {
            Ok(save) => {
                bytes += save.value.len();
                batch.push(save);
            }
            Err(_) => break,
        }
    }
    batch
}

async fn write_batches(pool: Pool, mut pending: mpsc::Receiver<PendingSave>) {
    while let Some(first) = pending.recv().await {
        let batch = gather(first, &mut pending);
        match write(&pool, &batch).await {
            Ok(()) => answer(batch, |_| Ok(())),
            // One bad value must not fail the saves it happened to share a batch with. (A lost
            // connection fails them all at once: retrying each would take that long again.)
            Err(error) if batch.len() > 1 && error.is_about_a_value() => {
                for save in batch {
                    let outcome = write(&pool, std::slice::from_ref(&save)).await;
                    let _ = save
                        .done
                        .send(outcome.map_err(|error| failed(&save.key, &error)));
                }
            }
            Err(error) => answer(batch, |key| Err(failed(key, &error))),
        }
    }
}

fn answer(batch: Vec<PendingSave>, outcome: impl Fn(&StorageKey) -> Result<(), StorageError>) {
    for save in batch {
        // A caller that stopped waiting does not need to know.
        let _ = save.done.send(outcome(&save.key));
    }
}

/// Why a batch was not written; every save in it is told.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("cannot connect to PostgreSQL: {}", describe(.0))]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("PostgreSQL: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("PostgreSQL did not answer within {0:?}")]
    TimedOut(std::time::Duration),
}

impl WriteError {
    /// PostgreSQL refused the statement for what it holds (a value too large, a malformed
    /// one: SQLSTATE classes 22, 23, 54), not for the connection or the server's state.
    fn is_about_a_value(&self) -> bool {
        match self {
            WriteError::Query(error) => error
                .code()
                .is_some_and(|code| matches!(&code.code()[..2], "22" | "23" | "54")),
            _ => false,
        }
    }
}

/// Longest a batch may take; past it, its saves fail (and are retried by the repo).
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn write(pool: &Pool, batch: &[PendingSave]) -> Result<(), WriteError> {
    tokio::time::timeout(WRITE_TIMEOUT, write_now(pool, batch))
        .await
        .unwrap_or(Err(WriteError::TimedOut(WRITE_TIMEOUT)))
}

async fn write_now(pool: &Pool, batch: &[PendingSave]) -> Result<(), WriteError> {
    // A key saved twice in one batch keeps its last value (one statement may not touch a row
    // twice).
    let mut last: HashMap<&str, &[u8]> = HashMap::with_capacity(batch.len());
    for save in batch {
        last.insert(&save.stored, &save.value);
    }
    let (keys, values): (Vec<&str>, Vec<&[u8]>) = last.into_iter().unzip();
    let client = pool.get().await?;
    let statement = client.prepare_cached(UPSERT_MANY).await?;
    client.execute(&statement, &[&keys, &values]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: usize, size: usize) -> PendingSave {
        let key = StorageKey::new([format!("doc{n}").as_str()]);
        PendingSave {
            stored: format!("doc{n}"),
            key,
            value: vec![1; size],
            done: oneshot::channel().0,
        }
    }

    /// Saves waiting together go in one statement, up to its bounds on count and bytes.
    #[tokio::test]
    async fn waiting_saves_are_gathered_up_to_the_bounds() {
        let (queue, mut waiting) = mpsc::channel(QUEUE);
        for n in 0..600 {
            queue.send(pending(n, 10)).await.unwrap();
        }
        let first = waiting.recv().await.unwrap();
        assert_eq!(gather(first, &mut waiting).len(), MAX_BATCH);
        let first = waiting.recv().await.unwrap();
        assert_eq!(gather(first, &mut waiting).len(), 600 - MAX_BATCH);

        let large = MAX_BATCH_BYTES / 3 + 1;
        for n in 0..5 {
            queue.send(pending(n, large)).await.unwrap();
        }
        let first = waiting.recv().await.unwrap();
        assert_eq!(gather(first, &mut waiting).len(), 3);
        let first = waiting.recv().await.unwrap();
        assert_eq!(gather(first, &mut waiting).len(), 2);
    }

    /// A value PostgreSQL refuses fails its own save only, not the others of its batch.
    #[cfg(feature = "test-server")]
    #[tokio::test]
    async fn a_refused_value_fails_only_its_own_save() {
        let server = crate::TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
        let url = server.database().await.unwrap();
        let store = crate::PostgresStorage::connect(&url).await.unwrap();
        // Every save waits in the queue before the writer starts: one batch.
        let (queue, waiting) = mpsc::channel(QUEUE);
        let outcomes: Vec<_> = (0..20)
            .map(|n| {
                let (done, outcome) = oneshot::channel();
                // A text may not hold NUL: PostgreSQL refuses the key (SQLSTATE 22021).
                let stored = if n == 7 {
                    "bad\0key".to_owned()
                } else {
                    format!("doc{n}")
                };
                let key = StorageKey::new([format!("doc{n}").as_str()]);
                let save = PendingSave {
                    key,
                    stored,
                    value: vec![n as u8],
                    done,
                };
                assert!(queue.try_send(save).is_ok());
                outcome
            })
            .collect();
        drop(queue);
        write_batches(store.pool().clone(), waiting).await;
        for (n, outcome) in outcomes.into_iter().enumerate() {
            let outcome = outcome.await.unwrap();
            assert_eq!(outcome.is_err(), n == 7, "save {n}: {outcome:?}");
        }
        let client = store.pool().get().await.unwrap();
        let count: i64 = client
            .query_one(
                "SELECT count(*) FROM tandem_entries WHERE key LIKE 'doc%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 19);
    }
}
