//! S3 fan-out: many clients hold one document; one writer makes a burst of changes; timed until
//! every client has the last.

use std::path::Path;

use automerge::transaction::Transactable;
use automerge::ROOT;
use futures::future::{join_all, try_join_all};

use crate::client::{acknowledged, connect, has_heads};
use crate::report::Measurement;
use crate::scenarios::{client, Stopwatch};
use crate::system::{Launcher, System};
use crate::BenchError;

/// `readers` clients, `changes` changes.
pub async fn run(
    launcher: &Launcher,
    system: System,
    readers: usize,
    changes: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let server = launcher.start(system, dir).await?;
    let (writer, storage) = connect(&server.url).await?;
    let (doc, _) = writer
        .create_with(|tx| tx.put(ROOT, "n", 0))
        .await
        .map_err(client)?;
    if let Some(storage) = &storage {
        acknowledged(&doc, storage).await?;
    }
    let repos = try_join_all((0..readers).map(|_| connect(&server.url))).await?;
    let mut held = Vec::with_capacity(readers);
    for (repo, _) in &repos {
        held.push(repo.find(doc.url()).await.map_err(client)?);
    }
    let heads = doc.heads().map_err(client)?;
    try_join_all(held.iter().map(|h| has_heads(h, &heads))).await?;

    let watch = Stopwatch::start(&server);
    for i in 0..changes {
        doc.change(|tx| tx.put(ROOT, "n", i as i64 + 1))
            .map_err(client)?
            .map_err(client)?;
    }
    let last = doc.heads().map_err(client)?;
    try_join_all(held.iter().map(|h| has_heads(h, &last))).await?;
    let measurement = watch.stop(&server);
    join_all(repos.iter().map(|(r, _)| r.shutdown())).await;
    writer.shutdown().await;
    server.stop().await?;
    Ok(measurement)
}
