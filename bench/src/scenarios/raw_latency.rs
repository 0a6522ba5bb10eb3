//! S2raw: S2 with two raw-protocol clients (`raw_client`), so that the round trip is the
//! server's share and the wire, without a client repo's own work: A changes a document both
//! hold, and the trip ends when B holds the change.

use std::path::Path;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use tandem_core::DocumentId;

use crate::client::PATIENCE;
use crate::raw_client::RawClient;
use crate::report::Measurement;
use crate::scenarios::{percentiles, Stopwatch};
use crate::system::{Launcher, System};
use crate::BenchError;

/// Reads and answers both clients until `until` says B is done.
async fn pump(
    a: &mut RawClient,
    b: &mut RawClient,
    mut until: impl FnMut(&RawClient) -> bool,
) -> Result<(), BenchError> {
    let mut acknowledged = Vec::new();
    let closed = || BenchError::Client("the server closed".into());
    while !until(b) {
        tokio::select! {
            frame = a.receive() => a.answer(frame.ok_or_else(closed)??, &mut acknowledged).await?,
            frame = b.receive() => b.answer(frame.ok_or_else(closed)??, &mut acknowledged).await?,
        }
    }
    Ok(())
}

/// Runs `trips` round trips.
pub async fn run(
    launcher: &Launcher,
    system: System,
    trips: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let server = launcher.start(system, dir).await?;
    let mut a = RawClient::join(&server.url, "raw-a".into()).await?;
    let mut b = RawClient::join(&server.url, "raw-b".into()).await?;
    let id = DocumentId::random();
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "n", 0)
        .map_err(|e| BenchError::Client(e.to_string()))?;
    tx.commit();
    let heads = doc.get_heads();
    a.hold(id.clone(), doc).await?;
    tokio::time::timeout(PATIENCE, a.wait_in_sync())
        .await
        .map_err(|_| BenchError::Stuck("A's first sync".into()))??;
    b.hold(id.clone(), Automerge::new()).await?;
    tokio::time::timeout(PATIENCE, pump(&mut a, &mut b, |b| b.heads(&id) == heads))
        .await
        .map_err(|_| BenchError::Stuck("B's first sync".into()))??;

    let watch = Stopwatch::start(&server);
    let mut samples: Vec<Duration> = Vec::with_capacity(trips);
    for n in 0..trips {
        let sent = Instant::now();
        a.edit(&id, n as i64 + 1).await?;
        let target = a.heads(&id);
        tokio::time::timeout(PATIENCE, pump(&mut a, &mut b, |b| b.heads(&id) == target))
            .await
            .map_err(|_| BenchError::Stuck("a change on its way to B".into()))??;
        samples.push(sent.elapsed());
    }
    let mut measurement = watch.stop(&server);
    measurement.extra.extend(percentiles(&mut samples));
    a.close().await;
    b.close().await;
    server.stop().await?;
    Ok(measurement)
}
