//! S6, second part: `clients` raw-protocol clients each hold a document of their own and one
//! shared with 99 others, then edit their own document once per `period` (spread evenly, so
//! the server sees `clients / period` edits a second) for `steady`; then faster, step by step
//! (the ramp), to find the highest edit rate at which the round trip's p99 stays under 50 ms.
//!
//! A round trip is from sending a change to the first sync message from the server whose heads
//! include it: the server holds the change (with durable acknowledgement, it is on disk).

use std::path::Path;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use tandem_core::DocumentId;
use tokio::sync::{mpsc, watch};

use crate::client::PATIENCE;
use crate::raw_client::RawClient;
use crate::report::Measurement;
use crate::scenarios::percentiles;
use crate::system::{Launcher, System};
use crate::BenchError;

/// Clients joining at once.
const JOINING_AT_ONCE: usize = 256;
/// Clients sharing one document.
const SHARING: usize = 100;
/// The round trip's p99 the ramp looks for the highest rate under.
const P99_BOUND_MS: f64 = 50.0;

/// The load.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Concurrent clients.
    pub clients: usize,
    /// Each client edits once per period in the steady part.
    pub period: Duration,
    /// How long the steady part lasts.
    pub steady: Duration,
    /// The ramp: steps at these multiples of the steady rate, each lasting `step`.
    pub ramp: Vec<u32>,
    /// How long each ramp step lasts.
    pub step: Duration,
}

/// What every client is told to do.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Hold the documents and answer the server.
    Hold,
    /// Edit once per `period`, client `i` first at `start + period * i / clients`, until `until`.
    Edit {
        period: Duration,
        start: Instant,
        until: Instant,
    },
    /// Stop editing; close once the server holds every change.
    Stop,
}

/// One client's life once it holds its documents: edits as the phase says, answers the server,
/// reports each round trip as (sent, took).
async fn client_task(
    mut client: RawClient,
    own: DocumentId,
    index: usize,
    clients: usize,
    mut phases: watch::Receiver<Phase>,
    samples: mpsc::UnboundedSender<(Instant, Duration)>,
) -> Result<usize, BenchError> {
    let mut acknowledged = Vec::new();
    let mut phase = Phase::Hold;
    let mut next_edit: Option<Instant> = None;
    let mut edits = 0usize;
    loop {
        if matches!(phase, Phase::Stop) && client.unacknowledged() == 0 {
            client.close().await;
            return Ok(edits);
        }
        let due = next_edit.unwrap_or_else(|| Instant::now() + PATIENCE);
        tokio::select! {
            frame = client.receive() => {
                let frame = frame.ok_or_else(|| BenchError::Client("the server closed".into()))??;
                client.answer(frame, &mut acknowledged).await?;
                for sample in acknowledged.drain(..) {
                    let _ = samples.send(sample);
                }
            }
            _ = tokio::time::sleep_until(due.into()), if next_edit.is_some() => {
                edits += 1;
                client.edit(&own, edits as i64).await?;
                next_edit = match phase {
                    Phase::Edit { period, until, .. } if due + period < until => Some(due + period),
                    _ => None,
                };
            }
            changed = phases.changed() => {
                if changed.is_err() {
                    return Err(BenchError::Client("the scenario ended".into()));
                }
                phase = *phases.borrow_and_update();
                next_edit = match phase {
                    Phase::Edit { period, start, .. } => {
                        Some(start + period.mul_f64(index as f64 / clients as f64))
                    }
                    _ => None,
                };
            }
        }
    }
}

/// A client joined and holding its own document and its group's shared one; how long that took.
async fn joined_client(
    url: String,
    index: usize,
    own: DocumentId,
    shared: (DocumentId, Vec<u8>),
) -> Result<(RawClient, Duration), BenchError> {
    let asked = Instant::now();
    let mut client = RawClient::join(&url, format!("load-{index}")).await?;
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "n", 0)
        .map_err(|e| BenchError::Client(e.to_string()))?;
    tx.commit();
    client.hold(own, doc).await?;
    let shared_doc = Automerge::load(&shared.1).map_err(|e| BenchError::Client(e.to_string()))?;
    client.hold(shared.0, shared_doc).await?;
    tokio::time::timeout(PATIENCE, client.wait_in_sync())
        .await
        .map_err(|_| BenchError::Stuck("syncing a joining client".into()))??;
    Ok((client, asked.elapsed()))
}

/// Runs the load against `system`.
pub async fn run(
    launcher: &Launcher,
    system: System,
    shape: &Shape,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let server = launcher.start(system, dir).await?;
    let before = server.rss_kib().map(|(now, _)| now);
    let shared: Vec<(DocumentId, Vec<u8>)> = (0..shape.clients.div_ceil(SHARING))
        .map(|group| {
            let mut doc = Automerge::new();
            let mut tx = doc.transaction();
            tx.put(ROOT, "group", group as i64)
                .map_err(|e| BenchError::Client(e.to_string()))?;
            tx.commit();
            Ok((DocumentId::random(), doc.save()))
        })
        .collect::<Result<_, BenchError>>()?;

    let (phases, phase) = watch::channel(Phase::Hold);
    let (samples_in, mut samples) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(shape.clients);
    let mut join_times = Vec::with_capacity(shape.clients);
    for first in (0..shape.clients).step_by(JOINING_AT_ONCE) {
        let batch = (first..(first + JOINING_AT_ONCE).min(shape.clients)).map(|index| {
            let own = DocumentId::random();
            let group = shared[index / SHARING].clone();
            let url = server.url.clone();
            async move {
                let joined = joined_client(url, index, own.clone(), group).await;
                joined.map(|(client, took)| (client, own, index, took))
            }
        });
        for joined in futures::future::join_all(batch).await {
            let (client, own, index, took) = joined?;
            join_times.push(took);
            tasks.push(tokio::spawn(client_task(
                client,
                own,
                index,
                shape.clients,
                phase.clone(),
                samples_in.clone(),
            )));
        }
    }
    drop(samples_in);
    let joined = started.elapsed();
    tracing::info!(
        clients = shape.clients,
        ?joined,
        "every client holds its documents"
    );
    let holding = server.rss_kib().map(|(now, _)| now);

    // The steady part, then the ramp; each window is the phase it measures, not a wait.
    let mut windows = Vec::new();
    let mut steady_cpu = None;
    for (multiple, length) in
        std::iter::once((1, shape.steady)).chain(shape.ramp.iter().map(|&m| (m, shape.step)))
    {
        let cpu_before = server.cpu_time();
        let start = Instant::now() + Duration::from_millis(100);
        let until = start + length;
        let _ = phases.send(Phase::Edit {
            period: shape.period / multiple,
            start,
            until,
        });
        tokio::time::sleep_until(until.into()).await;
        tracing::info!(multiple, "edit phase over");
        if multiple == 1 {
            steady_cpu = match (cpu_before, server.cpu_time()) {
                (Some(before), Some(after)) => Some(after.saturating_sub(before)),
                _ => None,
            };
        }
        windows.push((multiple, start, until));
    }
    let _ = phases.send(Phase::Stop);
    let mut edits = 0;
    for task in tasks {
        edits += tokio::time::timeout(PATIENCE, task)
            .await
            .map_err(|_| BenchError::Stuck("waiting for the last acknowledgements".into()))?
            .map_err(|e| BenchError::Client(e.to_string()))??;
    }
    let mut all = Vec::new();
    while let Some(sample) = samples.recv().await {
        all.push(sample);
    }
    let peak = server.rss_kib().map(|(_, peak)| peak);
    server.stop().await?;
    if all.len() != edits {
        return Err(BenchError::Wrong(format!(
            "{} of {edits} edits acknowledged",
            all.len()
        )));
    }

    let mut measurement = Measurement {
        wall: joined,
        client_cpu: None,
        server_cpu: steady_cpu,
        server_peak_rss_kib: peak,
        extra: vec![("joined_ms", joined.as_secs_f64() * 1e3)],
    };
    let [_, _, join_p99] = percentiles(&mut join_times).map(|(_, v)| v);
    measurement.extra.push(("join_p99_ms", join_p99));
    if let (Some(before), Some(holding)) = (before, holding) {
        measurement.extra.push((
            "kib_per_client",
            holding.saturating_sub(before) as f64 / shape.clients as f64,
        ));
    }
    let mut best_rate = 0.0;
    for (multiple, start, until) in windows {
        let mut trips: Vec<Duration> = all
            .iter()
            .filter(|(sent, _)| (start..until).contains(sent))
            .map(|(_, took)| *took)
            .collect();
        let rate = trips.len() as f64 / (until - start).as_secs_f64();
        let [(_, p50), _, (_, p99)] = percentiles(&mut trips);
        if p99 < P99_BOUND_MS && rate > best_rate {
            best_rate = rate;
        }
        let names = match multiple {
            1 => {
                measurement.extra.push(("edits_per_s", rate));
                measurement.extra.push(("p50_ms", p50));
                measurement.extra.push(("p99_ms", p99));
                if let Some(cpu) = steady_cpu {
                    let cores = cpu.as_secs_f64() / (until - start).as_secs_f64();
                    measurement.extra.push(("server_cores", cores));
                }
                continue;
            }
            2 => ("x2_edits_per_s", "x2_p99_ms"),
            4 => ("x4_edits_per_s", "x4_p99_ms"),
            8 => ("x8_edits_per_s", "x8_p99_ms"),
            16 => ("x16_edits_per_s", "x16_p99_ms"),
            _ => ("xn_edits_per_s", "xn_p99_ms"),
        };
        measurement.extra.push((names.0, rate));
        measurement.extra.push((names.1, p99));
    }
    measurement
        .extra
        .push(("max_edits_per_s_p99_under_50ms", best_rate));
    Ok(measurement)
}
