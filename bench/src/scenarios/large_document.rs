//! S7: one large document. A client uploads it; a fresh raw-protocol client (which only
//! applies what it receives, as automerge's own sync does) syncs it in full from the server's
//! memory; small changes to it make round trips; then the server restarts and a fresh
//! client finds it again (storage load plus sync), while two other clients time round trips of
//! a small document, to show whether the large one holds them up. Automerge's own `load` and an
//! in-process sync of the same bytes, timed in this run, are the reference.

use std::path::Path;
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT};
use tandem_core::DocumentId;
use tokio::sync::watch;

use crate::client::{acknowledged, connect, has_heads, PATIENCE};
use crate::raw_client::RawClient;
use crate::report::Measurement;
use crate::scenarios::latency::Pair;
use crate::scenarios::{client, percentiles};
use crate::system::{Launcher, System};
use crate::BenchError;

/// Which large document.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A text written by `changes` changes of 400 inserted and 100 deleted characters each:
    /// 500 operations a change.
    Text {
        /// Changes.
        changes: usize,
    },
    /// `changes` changes each replacing one value with `bytes` fresh (incompressible) bytes:
    /// history of `changes * bytes`.
    Binary {
        /// Changes.
        changes: usize,
        /// Bytes per change.
        bytes: usize,
    },
}

impl Kind {
    /// The figure's name.
    pub fn scenario(self) -> &'static str {
        match self {
            Kind::Text { .. } => "s7-text",
            Kind::Binary { .. } => "s7-binary",
        }
    }

    /// The figure's size: operations or bytes of history.
    pub fn size(self) -> usize {
        match self {
            Kind::Text { changes } => changes * 500,
            Kind::Binary { changes, bytes } => changes * bytes,
        }
    }

    fn build(self) -> Result<Automerge, BenchError> {
        let mut doc = Automerge::new();
        let wrong = |e: automerge::AutomergeError| BenchError::Client(e.to_string());
        match self {
            Kind::Text { changes } => {
                let mut tx = doc.transaction();
                let text = tx.put_object(ROOT, "text", ObjType::Text).map_err(wrong)?;
                tx.commit();
                let mut len = 0usize;
                for n in 0..changes {
                    let mut tx = doc.transaction();
                    let at = (n * 7919) % (len + 1);
                    let chunk: String = (0..400)
                        .map(|i| (b'a' + ((n + i) % 26) as u8) as char)
                        .collect();
                    tx.splice_text(&text, at, 0, &chunk).map_err(wrong)?;
                    let cut = (n * 104_729) % (len + 400 - 100);
                    tx.splice_text(&text, cut, 100, "").map_err(wrong)?;
                    tx.commit();
                    len += 300;
                }
            }
            Kind::Binary { changes, bytes } => {
                let mut state = 0x9E37_79B9_7F4A_7C15_u64;
                for _ in 0..changes {
                    let blob: Vec<u8> = (0..bytes)
                        .map(|_| {
                            // xorshift: fresh bytes that no compression shrinks.
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            state as u8
                        })
                        .collect();
                    let mut tx = doc.transaction();
                    tx.put(ROOT, "blob", blob).map_err(wrong)?;
                    tx.commit();
                }
            }
        }
        let mut tx = doc.transaction();
        tx.put(ROOT, "small", 0).map_err(wrong)?;
        tx.commit();
        Ok(doc)
    }
}

/// Automerge's own: (load of `bytes`, in-process sync of the loaded document to an empty one).
fn automerge_reference(bytes: &[u8]) -> Result<(Duration, Duration), BenchError> {
    let wrong = |e: automerge::AutomergeError| BenchError::Client(e.to_string());
    let started = Instant::now();
    let mut full = Automerge::load(bytes).map_err(wrong)?;
    let load = started.elapsed();
    let started = Instant::now();
    let mut empty = Automerge::new();
    let (mut full_state, mut empty_state) = (sync::State::new(), sync::State::new());
    loop {
        let a = full.generate_sync_message(&mut full_state);
        let b = empty.generate_sync_message(&mut empty_state);
        if a.is_none() && b.is_none() {
            break;
        }
        // Each message goes through its encoding, as on the wire.
        if let Some(m) = a {
            let m = sync::Message::decode(&m.encode())
                .map_err(|e| BenchError::Client(e.to_string()))?;
            empty
                .receive_sync_message(&mut empty_state, m)
                .map_err(wrong)?;
        }
        if let Some(m) = b {
            let m = sync::Message::decode(&m.encode())
                .map_err(|e| BenchError::Client(e.to_string()))?;
            full.receive_sync_message(&mut full_state, m)
                .map_err(wrong)?;
        }
    }
    let sync = started.elapsed();
    if empty.get_heads() != full.get_heads() {
        return Err(BenchError::Wrong(
            "automerge's own sync did not converge".into(),
        ));
    }
    Ok((load, sync))
}

/// Round trips of a small document between two clients of `url`, each as (sent, took), until
/// `stop` turns true.
async fn small_trips(
    url: String,
    mut stop: watch::Receiver<bool>,
    started: tokio::sync::oneshot::Sender<()>,
) -> Result<Vec<(Instant, Duration)>, BenchError> {
    let pair = Pair::start(&url).await?;
    let _ = started.send(());
    let mut samples = Vec::new();
    let mut n = 0;
    while !*stop.borrow_and_update() {
        n += 1;
        let sent = Instant::now();
        samples.push((sent, pair.trip(n).await?));
    }
    pair.shutdown().await;
    Ok(samples)
}

/// How long a raw-protocol client with nothing takes to hold `document_id` at `heads`.
async fn raw_first_sync(
    url: &str,
    document_id: &DocumentId,
    heads: &[automerge::ChangeHash],
) -> Result<Duration, BenchError> {
    let mut fresh = RawClient::join(url, format!("fresh-{}", DocumentId::random())).await?;
    let started = Instant::now();
    fresh.hold(document_id.clone(), Automerge::new()).await?;
    tokio::time::timeout(PATIENCE, fresh.wait_for_heads(document_id, heads))
        .await
        .map_err(|_| BenchError::Stuck("syncing the large document".into()))??;
    let took = started.elapsed();
    fresh.close().await;
    Ok(took)
}

/// Runs S7 for `kind` against `system`.
pub async fn run(
    launcher: &Launcher,
    system: System,
    kind: Kind,
    trips: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let built = kind.build()?;
    let bytes = built.save();
    drop(built);
    let (automerge_load, automerge_sync) = automerge_reference(&bytes)?;

    let server = launcher.start(system, dir).await?;
    let (writer, storage) = connect(&server.url).await?;
    let started = Instant::now();
    let doc = writer.import(&bytes).await.map_err(client)?;
    let heads = doc.heads().map_err(client)?;
    if let Some(storage) = &storage {
        acknowledged(&doc, storage).await?;
    }
    let upload = started.elapsed();

    // A fresh client syncs it in full from the server's memory.
    let first_sync = raw_first_sync(&server.url, doc.document_id(), &heads).await?;
    let (reader, _) = connect(&server.url).await?;
    let seen = reader.find(doc.url()).await.map_err(client)?;
    has_heads(&seen, &heads).await?;

    // Small changes to the large document.
    let mut samples = Vec::with_capacity(trips);
    for n in 0..trips {
        let sent = Instant::now();
        doc.change(|tx| tx.put(ROOT, "small", n as i64 + 1))
            .map_err(client)?
            .map_err(client)?;
        has_heads(&seen, &doc.heads().map_err(client)?).await?;
        samples.push(sent.elapsed());
    }
    let heads = doc.heads().map_err(client)?;
    if let Some(storage) = &storage {
        acknowledged(&doc, storage).await?;
    }
    let rss_loaded = server.rss_kib().map(|(now, _)| now);
    let id = doc.document_id().clone();
    reader.shutdown().await;
    writer.shutdown().await;
    server.stop().await?;

    // Restarted: found again from storage, while a small document's round trips go on.
    let server = launcher.start(system, dir).await?;
    let (stop, stopped) = watch::channel(false);
    let (going, gone) = tokio::sync::oneshot::channel();
    let trips_task = tokio::spawn(small_trips(server.url.clone(), stopped, going));
    if gone.await.is_err() {
        let why = match trips_task.await {
            Ok(Err(error)) => error.to_string(),
            Ok(Ok(_)) => "they ended".to_owned(),
            Err(error) => error.to_string(),
        };
        return Err(BenchError::Client(format!(
            "the small round trips did not start: {why}"
        )));
    }
    // A second of round trips with nothing else going on, as the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let find_started = Instant::now();
    let restart_find = raw_first_sync(&server.url, &id, &heads).await?;
    let _ = stop.send(true);
    let small = trips_task
        .await
        .map_err(|e| BenchError::Client(e.to_string()))??;
    let peak = server.rss_kib().map(|(_, peak)| peak);
    server.stop().await?;

    // Trips that overlapped the find, whenever they started, against those done before it.
    let find_ended = find_started + restart_find;
    let mut before: Vec<Duration> = small
        .iter()
        .filter(|(sent, took)| *sent + *took < find_started)
        .map(|(_, took)| *took)
        .collect();
    let during: Vec<Duration> = small
        .iter()
        .filter(|(sent, took)| *sent + *took >= find_started && *sent < find_ended)
        .map(|(_, took)| *took)
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut measurement = Measurement {
        wall: restart_find,
        client_cpu: None,
        server_cpu: None,
        server_peak_rss_kib: peak,
        extra: vec![
            ("stored_mb", bytes.len() as f64 / 1e6),
            ("upload_ms", ms(upload)),
            ("first_sync_ms", ms(first_sync)),
            ("restart_find_ms", ms(restart_find)),
            ("automerge_load_ms", ms(automerge_load)),
            ("automerge_sync_ms", ms(automerge_sync)),
            (
                "first_sync_over_automerge",
                first_sync.as_secs_f64() / automerge_sync.as_secs_f64(),
            ),
            (
                "restart_find_over_automerge",
                restart_find.as_secs_f64() / (automerge_load + automerge_sync).as_secs_f64(),
            ),
        ],
    };
    let [(_, p50), _, (_, p99)] = percentiles(&mut samples);
    measurement.extra.push(("change_p50_ms", p50));
    measurement.extra.push(("change_p99_ms", p99));
    if let Some(rss) = rss_loaded {
        measurement
            .extra
            .push(("rss_loaded_mib", rss as f64 / 1024.0));
    }
    let [_, _, (_, idle_p99)] = percentiles(&mut before);
    let slowest = during.iter().max().copied().unwrap_or_default();
    measurement.extra.push(("small_p99_idle_ms", idle_p99));
    measurement
        .extra
        .push(("small_trips_during_find", during.len() as f64));
    measurement
        .extra
        .push(("small_max_during_find_ms", ms(slowest)));
    Ok(measurement)
}
