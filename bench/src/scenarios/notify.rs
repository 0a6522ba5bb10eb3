//! What the cluster would cost if nodes told each other of changes through PostgreSQL
//! (`LISTEN`/`NOTIFY`) instead of linking directly: the floor of that design, measured on the
//! same database server. One trip: node A commits a chunk and notifies in the same transaction;
//! node B, listening, receives the notification and reads the chunk back. Nothing of automerge
//! or of tandem runs: it is the least such a design could take per change.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::report::Measurement;
use crate::scenarios::percentiles;
use crate::system::Launcher;
use crate::BenchError;

fn failed(error: tokio_postgres::Error) -> BenchError {
    BenchError::Client(error.to_string())
}

/// `trips` commit-notify-read trips.
pub async fn run(launcher: &Launcher, trips: usize, dir: &Path) -> Result<Measurement, BenchError> {
    let url = launcher.database(dir).await?;
    let (writer, writer_connection) = tokio_postgres::connect(&url, NoTls).await.map_err(failed)?;
    tokio::spawn(writer_connection);
    let (reader, mut reader_connection) =
        tokio_postgres::connect(&url, NoTls).await.map_err(failed)?;
    let (notified, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| reader_connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = notified.send(n.payload().to_owned());
            }
        }
    });
    writer
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS notify_floor (key text PRIMARY KEY, value bytea NOT NULL)",
        )
        .await
        .map_err(failed)?;
    reader
        .batch_execute("LISTEN chunks")
        .await
        .map_err(failed)?;
    let chunk = vec![7u8; 200];
    let started = Instant::now();
    let mut samples = Vec::with_capacity(trips);
    for i in 0..trips {
        let key = format!("doc/incremental/{i:08}");
        let sent = Instant::now();
        let transaction_sql =
            "WITH saved AS (INSERT INTO notify_floor (key, value) VALUES ($1, $2) RETURNING key)
             SELECT pg_notify('chunks', key) FROM saved";
        writer
            .execute(transaction_sql, &[&key, &chunk])
            .await
            .map_err(failed)?;
        let heard = tokio::time::timeout(Duration::from_secs(10), notifications.recv())
            .await
            .map_err(|_| BenchError::Stuck("no notification".into()))?
            .ok_or_else(|| BenchError::Stuck("the listener stopped".into()))?;
        let row = reader
            .query_one("SELECT value FROM notify_floor WHERE key = $1", &[&heard])
            .await
            .map_err(failed)?;
        let value: Vec<u8> = row.get(0);
        if value != chunk {
            return Err(BenchError::Wrong("read another chunk".into()));
        }
        samples.push(sent.elapsed());
    }
    let mut measurement = Measurement {
        wall: started.elapsed(),
        client_cpu: None,
        server_cpu: None,
        server_peak_rss_kib: None,
        extra: Vec::new(),
    };
    measurement.extra.extend(percentiles(&mut samples));
    Ok(measurement)
}
