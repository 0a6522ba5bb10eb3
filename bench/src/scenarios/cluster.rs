//! The cluster: three tandem-server nodes on one PostgreSQL (`--cluster-advertise`).
//!
//! - Round trips: a writer changes a document and a reader observes the change, with both on
//!   node 1 and with the reader on node 2, alternating trip by trip in one run, so the two
//!   figures share the machine's state; the ratio is what the hop between nodes costs.
//! - S1 across nodes: client A creates N documents through node 1, client B finds them all
//!   through node 2.

use std::path::Path;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::ROOT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{acknowledged, connect, has_heads};
use crate::report::Measurement;
use crate::scenarios::{bulk, client, percentiles, Stopwatch};
use crate::system::{Launcher, RunningServer};
use crate::BenchError;

const NODES: usize = 3;

/// Three nodes on the database standing for `dir`, once each is linked with the other two;
/// and how long that took from the last one's start (its "listening" line).
async fn start_nodes(
    launcher: &Launcher,
    dir: &Path,
) -> Result<(Vec<RunningServer>, Duration), BenchError> {
    let database = launcher.database(dir).await?;
    let mut nodes = Vec::with_capacity(NODES);
    for _ in 0..NODES {
        nodes.push(launcher.start_cluster_node(&database).await?);
    }
    let last_started = Instant::now();
    let deadline = last_started + Duration::from_secs(30);
    for node in &nodes {
        let mut every = tokio::time::interval(Duration::from_millis(10));
        while metric(&node.url, "tandem_cluster_links").await != Some(NODES as u64 - 1) {
            if Instant::now() > deadline {
                return Err(BenchError::Stuck("the nodes never linked".into()));
            }
            every.tick().await;
        }
    }
    Ok((nodes, last_started.elapsed()))
}

/// A metric from a node's `/metrics`.
async fn metric(url: &str, name: &str) -> Option<u64> {
    let address = url.strip_prefix("ws://")?;
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

async fn stop_all(nodes: Vec<RunningServer>) -> Result<(), BenchError> {
    for node in nodes {
        node.stop().await?;
    }
    Ok(())
}

/// `trips` round trips on one node and `trips` across two, alternating.
pub async fn round_trips(
    launcher: &Launcher,
    trips: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let (nodes, linked) = start_nodes(launcher, dir).await?;
    let (writer, storage) = connect(&nodes[0].url).await?;
    let storage = storage.ok_or_else(|| BenchError::Client("no storage id".into()))?;
    let (near, _) = connect(&nodes[0].url).await?;
    let (far, _) = connect(&nodes[1].url).await?;
    let (doc, _) = writer
        .create_with(|tx| tx.put(ROOT, "n", 0))
        .await
        .map_err(client)?;
    acknowledged(&doc, &storage).await?;
    let near_copy = near.find(doc.url()).await.map_err(client)?;
    let far_copy = far.find(doc.url()).await.map_err(client)?;
    for copy in [&near_copy, &far_copy] {
        has_heads(copy, &doc.heads().map_err(client)?).await?;
    }

    let watch = Stopwatch::start(&nodes[0]);
    let (mut same, mut cross) = (Vec::with_capacity(trips), Vec::with_capacity(trips));
    for i in 0..trips * 2 {
        let sent = Instant::now();
        doc.change(|tx| tx.put(ROOT, "n", i as i64 + 1))
            .map_err(client)?
            .map_err(client)?;
        let heads = doc.heads().map_err(client)?;
        // Each trip is timed to one reader; the other catches up before the next trip.
        let (timed, other, samples) = if i % 2 == 0 {
            (&near_copy, &far_copy, &mut same)
        } else {
            (&far_copy, &near_copy, &mut cross)
        };
        has_heads(timed, &heads).await?;
        samples.push(sent.elapsed());
        has_heads(other, &heads).await?;
    }
    let mut measurement = watch.stop(&nodes[0]);
    let [same_p50, same_p90, same_p99] = percentiles(&mut same).map(|(_, v)| v);
    let [cross_p50, cross_p90, cross_p99] = percentiles(&mut cross).map(|(_, v)| v);
    measurement.extra.extend([
        ("one_node_p50_ms", same_p50),
        ("one_node_p90_ms", same_p90),
        ("one_node_p99_ms", same_p99),
        ("cross_node_p50_ms", cross_p50),
        ("cross_node_p90_ms", cross_p90),
        ("cross_node_p99_ms", cross_p99),
        ("cross_over_one_p50", cross_p50 / same_p50),
        ("linked_ms", linked.as_secs_f64() * 1e3),
    ]);
    for repo in [writer, near, far] {
        repo.shutdown().await;
    }
    stop_all(nodes).await?;
    Ok(measurement)
}

/// S1 with creation through node 1 and finds through node 2.
pub async fn bulk_across(
    launcher: &Launcher,
    n: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let (nodes, _) = start_nodes(launcher, dir).await?;
    let outcome = bulk::run_between(&nodes[0], &nodes[0].url, &nodes[1].url, n).await;
    stop_all(nodes).await?;
    outcome.map(|(measurement, _)| measurement)
}
