//! S1 bulk: client A creates N small documents and waits until the server holds them all (the
//! server's storage reports our heads); then a fresh client B finds all N and checks them.

use std::path::Path;

use futures::future::join_all;
use tandem_core::AutomergeUrl;

use crate::client::{acknowledged, connect, PATIENCE};
use crate::report::Measurement;
use crate::scenarios::{client, fill, holds, Stopwatch};
use crate::system::{Launcher, RunningServer, System};
use crate::BenchError;

/// Finds run this many at a time.
const BATCH: usize = 1000;

/// Runs S1 with storage in `dir`; returns the measurement and the documents' URLs (for S5).
pub async fn run(
    launcher: &Launcher,
    system: System,
    n: usize,
    dir: &Path,
) -> Result<(Measurement, Vec<AutomergeUrl>), BenchError> {
    let server = launcher.start(system, dir).await?;
    let outcome = run_between(&server, &server.url, &server.url, n).await;
    server.stop().await?;
    outcome
}

/// S1 with A connected to `writer_url` and B to `reader_url` (the same server, or two nodes of
/// a cluster); `watched` is the server whose CPU and memory are reported.
pub async fn run_between(
    watched: &RunningServer,
    writer_url: &str,
    reader_url: &str,
    n: usize,
) -> Result<(Measurement, Vec<AutomergeUrl>), BenchError> {
    let server = watched;
    let (a, storage) = connect(writer_url).await?;
    let storage = storage.ok_or_else(|| {
        BenchError::Client(
            "the server advertises no storage id: cannot tell when it has the documents".into(),
        )
    })?;
    let (b, _) = connect(reader_url).await?;

    let watch = Stopwatch::start(server);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (handle, filled) = a.create_with(|tx| fill(tx, i)).await.map_err(client)?;
        filled.map_err(client)?;
        handles.push(handle);
    }
    let uploaded = watch.stop(server).wall;
    for handle in &handles {
        acknowledged(handle, &storage).await?;
    }
    let stored = watch.stop(server).wall;
    let urls: Vec<AutomergeUrl> = handles.iter().map(|h| h.url()).collect();
    drop(handles);
    for (batch_index, batch) in urls.chunks(BATCH).enumerate() {
        // A server busy storing A's documents may have dropped idle B as dead (a missed
        // keepalive): a find made while B reconnects would have no one to ask.
        b.wait_for_any_peer(PATIENCE)
            .await
            .map_err(|e| BenchError::Stuck(format!("B reconnecting: {e}")))?;
        let asked = std::time::Instant::now();
        let found = join_all(batch.iter().map(|url| b.find(url.clone()))).await;
        for (k, result) in found.into_iter().enumerate() {
            let i = batch_index * BATCH + k;
            let doc = result.map_err(|e| {
                BenchError::Wrong(format!(
                    "B could not find document {i} ({:.1} s after asking): {e}",
                    asked.elapsed().as_secs_f64()
                ))
            })?;
            if !doc.with_doc(|d| holds(d, i)).map_err(client)? {
                return Err(BenchError::Wrong(format!("document {i} arrived wrong")));
            }
        }
    }
    let mut measurement = watch.stop(server);
    measurement
        .extra
        .push(("created_ms", uploaded.as_secs_f64() * 1e3));
    measurement
        .extra
        .push(("stored_ms", stored.as_secs_f64() * 1e3));
    measurement
        .extra
        .push(("found_ms", (measurement.wall - stored).as_secs_f64() * 1e3));
    a.shutdown().await;
    b.shutdown().await;
    Ok((measurement, urls))
}
