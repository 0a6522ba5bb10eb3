//! The floor: plain automerge sync of the S1 documents between two in-memory documents, pairwise,
//! in one thread — no repo, no network, no storage. The least work S1's transfer can take.

use std::time::Instant;

use automerge::sync::{State, SyncDoc};
use automerge::Automerge;

use crate::report::Measurement;
use crate::scenarios::{client, fill, holds};
use crate::BenchError;

/// Syncs `n` S1 documents into empty ones.
pub fn run(n: usize) -> Result<Measurement, BenchError> {
    let mut documents = Vec::with_capacity(n);
    for i in 0..n {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        fill(&mut tx, i).map_err(client)?;
        tx.commit();
        documents.push(doc);
    }
    let cpu = crate::proc_stats::own_cpu_time();
    let started = Instant::now();
    for (i, doc) in documents.iter_mut().enumerate() {
        let mut theirs = Automerge::new();
        let (mut ours_state, mut their_state) = (State::new(), State::new());
        loop {
            let mut quiet = true;
            if let Some(m) = doc.generate_sync_message(&mut ours_state) {
                theirs
                    .receive_sync_message(&mut their_state, m)
                    .map_err(client)?;
                quiet = false;
            }
            if let Some(m) = theirs.generate_sync_message(&mut their_state) {
                doc.receive_sync_message(&mut ours_state, m)
                    .map_err(client)?;
                quiet = false;
            }
            if quiet {
                break;
            }
        }
        if !holds(&theirs, i) {
            return Err(BenchError::Wrong(format!(
                "floor: document {i} arrived wrong"
            )));
        }
    }
    let wall = started.elapsed();
    let client_cpu = match (cpu, crate::proc_stats::own_cpu_time()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok(Measurement {
        wall,
        client_cpu,
        ..Measurement::default()
    })
}
