//! S2 latency: A and B share a document; A changes it and B observes the change, one round trip
//! at a time.

use std::path::Path;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::ROOT;
use tandem_repo::{DocHandle, Repo};

use crate::client::{acknowledged, connect, has_heads};
use crate::report::Measurement;
use crate::scenarios::{client, percentiles, Stopwatch};
use crate::system::{Launcher, System};
use crate::BenchError;

/// Two clients of one server sharing a document: A writes it, B watches it.
pub struct Pair {
    a: Repo,
    b: Repo,
    doc: DocHandle,
    seen: DocHandle,
}

impl Pair {
    /// A creates the document; B finds it once the server holds it (samod answers a find
    /// that comes first with "unavailable"), and has it.
    pub async fn start(url: &str) -> Result<Pair, BenchError> {
        let (a, storage) = connect(url).await?;
        let (b, _) = connect(url).await?;
        let (doc, _) = a
            .create_with(|tx| tx.put(ROOT, "n", 0))
            .await
            .map_err(client)?;
        if let Some(storage) = &storage {
            acknowledged(&doc, storage).await?;
        }
        let seen = b.find(doc.url()).await.map_err(client)?;
        has_heads(&seen, &doc.heads().map_err(client)?).await?;
        Ok(Pair { a, b, doc, seen })
    }

    /// A sets the counter to `n`; how long until B has the change.
    pub async fn trip(&self, n: i64) -> Result<Duration, BenchError> {
        let sent = Instant::now();
        self.doc
            .change(|tx| tx.put(ROOT, "n", n))
            .map_err(client)?
            .map_err(client)?;
        has_heads(&self.seen, &self.doc.heads().map_err(client)?).await?;
        Ok(sent.elapsed())
    }

    /// Stops both clients.
    pub async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

/// Runs `trips` round trips.
pub async fn run(
    launcher: &Launcher,
    system: System,
    trips: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let server = launcher.start(system, dir).await?;
    let pair = Pair::start(&server.url).await?;
    let watch = Stopwatch::start(&server);
    let mut samples = Vec::with_capacity(trips);
    for i in 0..trips {
        samples.push(pair.trip(i as i64 + 1).await?);
    }
    let mut measurement = watch.stop(&server);
    measurement.extra.extend(percentiles(&mut samples));
    pair.shutdown().await;
    server.stop().await?;
    Ok(measurement)
}
