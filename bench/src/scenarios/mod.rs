//! The scenarios, each the same for every server (PROTOCOL-independent: they only use the
//! client API), and the floor.

pub mod bulk;
pub mod cluster;
pub mod cold_start;
pub mod connections;
pub mod edit_load;
pub mod fan_out;
pub mod floor;
pub mod js_client;
pub mod large_document;
pub mod latency;
pub mod many;
pub mod memory;
pub mod notify;
pub mod raw_latency;

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ScalarValue, ROOT};

use crate::proc_stats;
use crate::report::Measurement;
use crate::system::RunningServer;
use crate::BenchError;

/// The S1 document: `{title: "doc i", items: [0..9]}`.
pub fn fill(tx: &mut impl Transactable, i: usize) -> Result<(), automerge::AutomergeError> {
    tx.put(ROOT, "title", format!("doc {i}"))?;
    let items = tx.put_object(ROOT, "items", ObjType::List)?;
    // One splice, as automerge's JS proxy writes an assigned array in one call: the same ten
    // ops in the same change as ten `insert` calls, at a third of the cost (0.23 against
    // 0.65 s for 10,000 documents), which S1 times and the floor does not.
    tx.splice(&items, 0, 0, (0..10_i64).map(ScalarValue::from))?;
    Ok(())
}

/// Whether `doc` is the S1 document number `i`.
pub fn holds(doc: &impl ReadDoc, i: usize) -> bool {
    let title = match doc.get(ROOT, "title") {
        Ok(Some((value, _))) => value.as_str().map(str::to_owned),
        _ => None,
    };
    let items = match doc.get(ROOT, "items") {
        Ok(Some((_, id))) => doc.length(&id),
        _ => 0,
    };
    title.as_deref() == Some(format!("doc {i}").as_str()) && items == 10
}

/// CPU counters at the start of a timed part.
pub struct Stopwatch {
    started: Instant,
    client_cpu: Option<Duration>,
    server_cpu: Option<Duration>,
}

impl Stopwatch {
    /// Starts timing, noting both processes' CPU time so far.
    pub fn start(server: &RunningServer) -> Stopwatch {
        Stopwatch {
            client_cpu: proc_stats::own_cpu_time(),
            server_cpu: server.cpu_time(),
            started: Instant::now(),
        }
    }

    /// The measurement from the start to now.
    pub fn stop(&self, server: &RunningServer) -> Measurement {
        let wall = self.started.elapsed();
        let delta = |before: Option<Duration>, after: Option<Duration>| {
            Some(after?.saturating_sub(before?))
        };
        Measurement {
            wall,
            client_cpu: delta(self.client_cpu, proc_stats::own_cpu_time()),
            server_cpu: delta(self.server_cpu, server.cpu_time()),
            server_peak_rss_kib: server.rss_kib().map(|(_, peak)| peak),
            extra: Vec::new(),
        }
    }
}

/// p50, p90, p99 of `samples` in milliseconds.
pub fn percentiles(samples: &mut [Duration]) -> [(&'static str, f64); 3] {
    samples.sort();
    let at = |q: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3
    };
    [
        ("p50_ms", at(0.5)),
        ("p90_ms", at(0.9)),
        ("p99_ms", at(0.99)),
    ]
}

/// Turns a client error into the bench's.
pub fn client<E: std::fmt::Display>(error: E) -> BenchError {
    BenchError::Client(error.to_string())
}
