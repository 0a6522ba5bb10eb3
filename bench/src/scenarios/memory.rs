//! Memory per loaded document: the server's resident memory for `count` small documents (S1's
//! shape) held in memory, against automerge's own footprint of the same documents: a process
//! (this binary, with the same allocator) that loads them with `Automerge::load` and keeps them.

use std::path::Path;

use automerge::Automerge;

use crate::client::{acknowledged, connect};
use crate::report::Measurement;
use crate::scenarios::{client, fill, Stopwatch};
use crate::system::{Launcher, System};
use crate::{proc_stats, BenchError};

/// The server's memory per document, and automerge's, for `count` documents.
pub async fn per_document(
    launcher: &Launcher,
    system: System,
    count: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let (own, applied) = automerge_footprint_kib(count).await?;
    let server = launcher.start(system, dir).await?;
    let (writer, storage) = connect(&server.url).await?;
    let storage = storage.ok_or_else(|| BenchError::Client("no storage id".into()))?;
    let before = server.rss_kib().map(|(now, _)| now);
    let watch = Stopwatch::start(&server);
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let (handle, filled) = writer.create_with(|tx| fill(tx, i)).await.map_err(client)?;
        filled.map_err(client)?;
        handles.push(handle);
    }
    for handle in &handles {
        acknowledged(handle, &storage).await?;
    }
    let after = server.rss_kib().map(|(now, _)| now);
    let mut measurement = watch.stop(&server);
    if let (Some(before), Some(after)) = (before, after) {
        let server_per_doc = after.saturating_sub(before) as f64 / count as f64;
        measurement.extra.extend([
            ("server_kib_per_doc", server_per_doc),
            ("automerge_kib_per_doc", own),
            ("server_over_automerge", server_per_doc / own),
            ("automerge_applied_kib_per_doc", applied),
        ]);
    }
    drop(handles);
    writer.shutdown().await;
    server.stop().await?;
    Ok(measurement)
}

/// Automerge's own KiB per document, measured in a fresh process of this binary: loaded, and
/// built by applying their changes (as a server receiving them over sync builds them).
async fn automerge_footprint_kib(count: usize) -> Result<(f64, f64), BenchError> {
    let me = std::env::current_exe().map_err(|e| BenchError::Spawn(e.to_string()))?;
    let output = tokio::process::Command::new(me)
        .args(["hold-automerge", "--count", &count.to_string()])
        .output()
        .await
        .map_err(|e| BenchError::Spawn(e.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let wrong = || BenchError::Spawn(format!("hold-automerge printed {text:?}"));
    let mut figures = text.split_whitespace().map(|f| f.parse::<f64>());
    match (figures.next(), figures.next()) {
        (Some(Ok(loaded)), Some(Ok(applied))) => Ok((loaded, applied)),
        _ => Err(wrong()),
    }
}

/// What `hold-automerge` does: makes `count` S1 documents as bytes, loads them all and keeps
/// them; the growth of this process's resident memory per document, in KiB. Then the same for
/// documents built by applying the changes of each.
pub fn hold_automerge(count: usize) -> Result<(f64, f64), String> {
    let mut saved = Vec::with_capacity(count);
    for i in 0..count {
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| fill(tx, i))
            .map_err(|e| format!("{e:?}"))?;
        saved.push(doc.save());
    }
    let rss = || proc_stats::rss_kib(std::process::id()).map(|(now, _)| now);
    let before = rss().ok_or("no /proc")?;
    let loaded: Vec<Automerge> = saved
        .iter()
        .map(|bytes| Automerge::load(bytes).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let after = rss().ok_or("no /proc")?;
    let applied: Vec<Automerge> = loaded
        .iter()
        .map(|doc| {
            let mut built = Automerge::new();
            built
                .apply_changes(doc.get_changes(&[]))
                .map_err(|e| e.to_string())?;
            Ok(built)
        })
        .collect::<Result<_, String>>()?;
    let with_applied = rss().ok_or("no /proc")?;
    drop((loaded, applied));
    let per_doc = |from: u64, to: u64| to.saturating_sub(from) as f64 / count as f64;
    Ok((per_doc(before, after), per_doc(after, with_applied)))
}
