//! S4 many documents × many clients: the server holds D documents; C clients each find K of them
//! and edit each once, all clients at once; timed until the server holds every edit.

use std::path::Path;

use automerge::transaction::Transactable;
use automerge::ROOT;
use futures::future::{join_all, try_join_all};
use tandem_core::AutomergeUrl;
use tandem_repo::Repo;

use crate::client::{acknowledged, connect};
use crate::report::Measurement;
use crate::scenarios::{client, fill, Stopwatch};
use crate::system::{Launcher, System};
use crate::BenchError;

/// The shape of one S4 run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Documents the server holds.
    pub documents: usize,
    /// Clients at once.
    pub clients: usize,
    /// Documents each client finds and edits.
    pub per_client: usize,
}

/// Runs S4.
pub async fn run(
    launcher: &Launcher,
    system: System,
    shape: Shape,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let server = launcher.start(system, dir).await?;
    let (seeder, storage) = connect(&server.url).await?;
    let storage = storage.ok_or_else(|| {
        BenchError::Client(
            "the server advertises no storage id: cannot tell when it has the documents".into(),
        )
    })?;
    let mut urls = Vec::with_capacity(shape.documents);
    let mut handles = Vec::with_capacity(shape.documents);
    for i in 0..shape.documents {
        let (handle, filled) = seeder.create_with(|tx| fill(tx, i)).await.map_err(client)?;
        filled.map_err(client)?;
        handles.push(handle);
    }
    for handle in &handles {
        acknowledged(handle, &storage).await?;
        urls.push(handle.url());
    }
    drop(handles);
    seeder.shutdown().await;
    let clients = try_join_all((0..shape.clients).map(|_| connect(&server.url))).await?;

    let watch = Stopwatch::start(&server);
    let total = shape.clients * shape.per_client;
    let work = clients.iter().enumerate().map(|(c, (repo, _))| {
        // Client c takes the K documents after the first c·K, wrapping around: K different
        // documents for every client (at D = C·K each document once; at D = C·K / 10 each
        // document by ten clients), so every operation is a find of a document new to its
        // client, then one edit. (Until 2026-11-22 the slices were spread over the documents, so
        // at D < C·K a client found each of its documents ten times over.)
        let mine: Vec<AutomergeUrl> = (0..shape.per_client)
            .map(|k| urls[(c * shape.per_client + k) % shape.documents].clone())
            .collect();
        edit_each(repo, mine, c, &storage)
    });
    try_join_all(work).await?;
    let mut measurement = watch.stop(&server);
    if let Some(cpu) = measurement.server_cpu {
        measurement.extra.push((
            "server_cpu_us_per_op",
            cpu.as_secs_f64() * 1e6 / total as f64,
        ));
    }
    measurement
        .extra
        .push(("ops_per_s", total as f64 / measurement.wall.as_secs_f64()));
    join_all(clients.iter().map(|(r, _)| r.shutdown())).await;
    server.stop().await?;
    Ok(measurement)
}

async fn edit_each(
    repo: &Repo,
    urls: Vec<AutomergeUrl>,
    who: usize,
    storage: &tandem_core::StorageId,
) -> Result<(), BenchError> {
    for url in urls {
        let doc = repo.find(url).await.map_err(client)?;
        doc.change(|tx| tx.put(ROOT, format!("edited by {who}"), true))
            .map_err(client)?
            .map_err(client)?;
        acknowledged(&doc, storage).await?;
    }
    Ok(())
}
