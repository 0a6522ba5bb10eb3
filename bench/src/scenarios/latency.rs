//! S2 latency: A and B share a document; A changes it and B observes the change, one round trip
//! at a time.

use std::path::Path;
use std::time::Instant;

use automerge::transaction::Transactable;
use automerge::ROOT;

use crate::client::{acknowledged, connect, has_heads};
use crate::report::Measurement;
use crate::scenarios::{client, percentiles, Stopwatch};
use crate::system::{Launcher, System};
use crate::BenchError;

/// Runs `trips` round trips.
pub async fn run(
    launcher: &Launcher,
    system: System,
    trips: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let server = launcher.start(system, dir).await?;
    let (a, storage) = connect(&server.url).await?;
    let (b, _) = connect(&server.url).await?;
    let (doc, _) = a
        .create_with(|tx| tx.put(ROOT, "n", 0))
        .await
        .map_err(client)?;
    if let Some(storage) = &storage {
        acknowledged(&doc, storage).await?;
    }
    let seen = b.find(doc.url()).await.map_err(client)?;
    has_heads(&seen, &doc.heads().map_err(client)?).await?;

    let watch = Stopwatch::start(&server);
    let mut samples = Vec::with_capacity(trips);
    for i in 0..trips {
        let sent = Instant::now();
        doc.change(|tx| tx.put(ROOT, "n", i as i64 + 1))
            .map_err(client)?
            .map_err(client)?;
        has_heads(&seen, &doc.heads().map_err(client)?).await?;
        samples.push(sent.elapsed());
    }
    let mut measurement = watch.stop(&server);
    measurement.extra.extend(percentiles(&mut samples));
    a.shutdown().await;
    b.shutdown().await;
    server.stop().await?;
    Ok(measurement)
}
