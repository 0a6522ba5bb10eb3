//! S5 cold start: the server restarts on a directory that already holds N documents (left by
//! S1); timed to its first `peer` reply and to the first document served; then its memory after
//! 1,000 finds.

use std::path::Path;
use std::time::Instant;

use futures::future::try_join_all;
use tandem_core::AutomergeUrl;

use crate::client::connect;
use crate::report::Measurement;
use crate::scenarios::{client, holds, Stopwatch};
use crate::system::{Launcher, System};
use crate::BenchError;

/// Finds after the first, to see what serving costs in memory.
const FINDS: usize = 1000;

/// Runs S5 on `dir`, which holds the documents `urls` (in S1 order).
pub async fn run(
    launcher: &Launcher,
    system: System,
    dir: &Path,
    urls: &[AutomergeUrl],
) -> Result<Measurement, BenchError> {
    if urls.is_empty() {
        return Err(BenchError::Wrong("no documents to start on".into()));
    }
    // The restart starts from a quiet disk: S1's writeback (all of it, for a server that does
    // not sync) is S1's cost, and at 100,000 documents it had tripled the time to listen.
    let synced = tokio::process::Command::new("sync").status().await;
    if !synced.is_ok_and(|s| s.success()) {
        return Err(BenchError::Client(
            "`sync` failed before the restart".into(),
        ));
    }
    let spawned = Instant::now();
    let server = launcher.start(system, dir).await?;
    let listening = server.started_in;
    let watch = Stopwatch::start(&server);
    let (repo, _) = connect(&server.url).await?;
    let peer = spawned.elapsed();
    // The middle document: neither the first nor the last written.
    let middle = urls.len() / 2;
    let doc = repo.find(urls[middle].clone()).await.map_err(client)?;
    let first_find = spawned.elapsed();
    if !doc.with_doc(|d| holds(d, middle)).map_err(client)? {
        return Err(BenchError::Wrong(format!(
            "document {middle} came back wrong"
        )));
    }
    // Then 1,000 more (or all there are), 100 at a time.
    let picks: Vec<usize> = (0..FINDS.min(urls.len()))
        .map(|k| k * urls.len() / FINDS.min(urls.len()))
        .collect();
    for batch in picks.chunks(100) {
        let found = try_join_all(batch.iter().map(|&i| repo.find(urls[i].clone())))
            .await
            .map_err(client)?;
        for (doc, &i) in found.iter().zip(batch) {
            if !doc.with_doc(|d| holds(d, i)).map_err(client)? {
                return Err(BenchError::Wrong(format!("document {i} came back wrong")));
            }
        }
    }
    let mut measurement = watch.stop(&server);
    measurement.wall = first_find;
    let rss_now = server.rss_kib().map(|(now, _)| now);
    measurement
        .extra
        .push(("listening_ms", listening.as_secs_f64() * 1e3));
    measurement
        .extra
        .push(("peer_ms", peer.as_secs_f64() * 1e3));
    measurement
        .extra
        .push(("first_find_ms", first_find.as_secs_f64() * 1e3));
    if let Some(rss) = rss_now {
        measurement
            .extra
            .push(("rss_after_finds_mib", rss as f64 / 1024.0));
    }
    repo.shutdown().await;
    server.stop().await?;
    Ok(measurement)
}
