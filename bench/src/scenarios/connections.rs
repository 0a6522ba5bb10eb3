//! S6, first part: `count` clients join the server and stay, idle. What each joined connection
//! costs the server in memory (its resident memory after all joined, less before, per
//! connection) and how long joining them all takes.
//!
//! The clients speak the protocol by hand (join, then answer pings) so that one process can
//! hold 10,000 of them on two cores; each is one socket and one small task.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::raw_client::RawClient;
use crate::report::Measurement;
use crate::scenarios::percentiles;
use crate::system::{Launcher, System};
use crate::BenchError;

/// Clients joining at once.
const JOINING_AT_ONCE: usize = 256;

/// One idle client: joins as `name`, then reads (answering pings) until told to stop. Its task,
/// and how long joining took.
async fn idle_client(
    url: String,
    name: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(tokio::task::JoinHandle<()>, Duration), BenchError> {
    let asked = Instant::now();
    let mut client = RawClient::join(&url, name).await?;
    let joined = asked.elapsed();
    // Reading answers the server's pings; the socket stays until the scenario ends.
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = client.receive() => if !matches!(frame, Some(Ok(_))) { return },
                // Sent once, when the scenario ends.
                _ = stop.changed() => {
                    client.close().await;
                    return;
                }
            }
        }
    });
    Ok((task, joined))
}

/// `count` idle clients of `system`.
pub async fn idle(
    launcher: &Launcher,
    system: System,
    count: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    let server = launcher.start(system, dir).await?;
    let before = server.rss_kib().map(|(now, _)| now);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(count);
    let mut join_times = Vec::with_capacity(count);
    for first in (0..count).step_by(JOINING_AT_ONCE) {
        let batch = (first..(first + JOINING_AT_ONCE).min(count))
            .map(|n| idle_client(server.url.clone(), format!("idle-{n}"), stopped.clone()));
        for joined in futures::future::join_all(batch).await {
            let (client, took) = joined?;
            clients.push(client);
            join_times.push(took);
        }
    }
    let joined = started.elapsed();
    // Past one keepalive round, so that every connection has been pinged and answered.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = server.rss_kib().map(|(now, _)| now);
    let still_open = clients.iter().filter(|c| !c.is_finished()).count();
    let mut measurement = Measurement {
        wall: joined,
        client_cpu: None,
        server_cpu: server.cpu_time(),
        server_peak_rss_kib: server.rss_kib().map(|(_, peak)| peak),
        extra: vec![
            ("joined_ms", joined.as_secs_f64() * 1e3),
            ("still_open", still_open as f64),
        ],
    };
    let [p50, _, p99] = percentiles(&mut join_times).map(|(_, v)| v);
    let slowest = join_times.iter().max().copied().unwrap_or_default();
    measurement.extra.extend([
        ("join_p50_ms", p50),
        ("join_p99_ms", p99),
        ("join_max_ms", slowest.as_secs_f64() * 1e3),
    ]);
    if let (Some(before), Some(after)) = (before, after) {
        measurement.extra.push((
            "kib_per_connection",
            after.saturating_sub(before) as f64 / count as f64,
        ));
    }
    let _ = stop.send(true);
    for client in clients {
        let _ = client.await;
    }
    server.stop().await?;
    if still_open < count {
        return Err(BenchError::Wrong(format!(
            "{} of {count} idle clients were disconnected",
            count - still_open
        )));
    }
    Ok(measurement)
}
