//! S1 and S2 driven by the JS automerge-repo client (`tests/js/bench-client.mjs`), so that a
//! server is also measured with a client that is not ours.
//!
//! The Node process connects its repos, says it is ready, and starts its timed part when told
//! to; the server's stopwatch runs from just before that word to the figures coming back. Wall
//! and client CPU time are the ones Node measured for itself.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use crate::client::PATIENCE;
use crate::report::Measurement;
use crate::scenarios::Stopwatch;
use crate::system::{Launcher, System};
use crate::BenchError;

/// Figures the JS client may report beyond wall and CPU time, in the order they are shown.
const EXTRA: [&str; 6] = [
    "created_ms",
    "stored_ms",
    "found_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
];

/// Runs `scenario` (`s1` or `s2`) at `size` with the JS client against `system`.
pub async fn run(
    launcher: &Launcher,
    system: System,
    scenario: &str,
    size: usize,
    dir: &Path,
) -> Result<Measurement, BenchError> {
    if !launcher.js_dir.join("node_modules").exists() {
        return Err(BenchError::Client(format!(
            "no node_modules in {}: run `npm ci` there",
            launcher.js_dir.display()
        )));
    }
    let server = launcher.start(system, dir).await?;
    let mut node = Command::new("node")
        .arg(launcher.js_dir.join("bench-client.mjs"))
        .arg(scenario)
        .arg(&server.url)
        .arg(size.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Client(format!("node: {e}")))?;
    let (Some(mut stdin), Some(stdout)) = (node.stdin.take(), node.stdout.take()) else {
        return Err(BenchError::Client("node has no stdio".into()));
    };
    let mut lines = BufReader::new(stdout).lines();

    let ready = next_object(&mut lines, "connecting").await?;
    if ready.get("ready") != Some(&serde_json::Value::Bool(true)) {
        return Err(BenchError::Client(format!(
            "the JS client said {ready} before it was ready"
        )));
    }
    let watch = Stopwatch::start(&server);
    stdin
        .write_all(b"go\n")
        .await
        .map_err(|e| BenchError::Client(format!("telling the JS client to go: {e}")))?;
    stdin
        .flush()
        .await
        .map_err(|e| BenchError::Client(format!("telling the JS client to go: {e}")))?;
    let figures = next_object(&mut lines, "running the scenario").await?;
    let mut measurement = watch.stop(&server);
    let number = |name: &str| figures.get(name).and_then(serde_json::Value::as_f64);
    let wall = number("wall_ms").ok_or_else(|| {
        BenchError::Client(format!("the JS client reported no wall time: {figures}"))
    })?;
    measurement.wall = Duration::from_secs_f64(wall / 1e3);
    measurement.client_cpu = number("client_cpu_ms").map(|ms| Duration::from_secs_f64(ms / 1e3));
    measurement.extra = EXTRA
        .iter()
        .filter_map(|name| Some((*name, number(name)?)))
        .collect();

    drop(stdin);
    match tokio::time::timeout(Duration::from_secs(10), node.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => tracing::warn!(%status, "the JS client exited badly after reporting"),
        Ok(Err(error)) => tracing::warn!(%error, "could not wait for the JS client"),
        Err(_) => {
            tracing::warn!("the JS client did not exit after reporting; killing it");
            let _ = node.kill().await;
        }
    }
    server.stop().await?;
    Ok(measurement)
}

/// The next JSON object the JS client prints (other lines, should a library print any, are
/// passed on to stderr); the end of its output is its failure.
async fn next_object(
    lines: &mut Lines<BufReader<ChildStdout>>,
    doing: &str,
) -> Result<serde_json::Value, BenchError> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let line = lines
                .next_line()
                .await
                .map_err(|e| BenchError::Client(format!("reading the JS client: {e}")))?
                .ok_or_else(|| {
                    BenchError::Client(format!(
                        "the JS client exited while {doing} (its error is above)"
                    ))
                })?;
            match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(object) if object.is_object() => return Ok(object),
                _ => eprintln!("js client: {line}"),
            }
        }
    })
    .await
    .map_err(|_| BenchError::Stuck(format!("the JS client, {doing}")))?
}
