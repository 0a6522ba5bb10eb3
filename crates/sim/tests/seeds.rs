//! The simulation over many seeds. `SIM_SEEDS` (default 1,000) seeds from `SIM_FIRST` (default
//! 0); `SIM_SEED=n` replays one seed. A failure prints its seed, the command that replays it and
//! the end of its event trace.

use tandem_sim::{run_seed, Stats, World};

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeds_converge_and_lose_nothing() {
    let (first, count) = match env("SIM_SEED") {
        Some(seed) => (seed, 1),
        None => (
            env("SIM_FIRST").unwrap_or(0),
            env("SIM_SEEDS").unwrap_or(1000),
        ),
    };
    let mut total = Stats::default();
    let mut failures = Vec::new();
    for seed in first..first + count {
        match run_seed(seed) {
            Ok(stats) => total += &stats,
            Err(failure) => failures.push(failure),
        }
    }
    for failure in &failures {
        println!("{}", failure.to_string().lines().next().unwrap_or_default());
    }
    println!(
        "{count} seeds from {first}: {} operations, {} messages delivered, {} faults \
         ({:.1} per run: {} lost, {} doubled, {} reordered, {} delayed, {} link cuts, {} kills), \
         {} writes torn or dropped, {} corrupt chunks skipped, {} durable saves, {} evictions, \
         {} finds settled by their timeout, {} finds while transports connected",
        total.operations,
        total.delivered,
        total.faults(),
        total.faults() as f64 / count as f64,
        total.dropped,
        total.duplicated,
        total.reordered,
        total.delayed,
        total.partitions,
        total.restarts,
        total.damaged_writes,
        total.corrupt_chunks_skipped,
        total.saves,
        total.evictions,
        total.find_timeouts,
        total.finds_while_connecting,
    );
    if let (Some(_), Some(failure)) = (env("SIM_SEED"), failures.first()) {
        // A replay: show the whole story, known bug or not.
        panic!("{failure}");
    }
    if let Some(first_failure) = failures.first() {
        panic!(
            "{} of {count} seeds failed; the first:\n{first_failure}",
            failures.len()
        );
    }
    // The simulation must do something: a run with no faults and no work proves nothing.
    assert!(total.faults() > 0 && total.operations > count as usize);
}

#[test]
fn a_seed_replays_event_for_event() {
    for seed in [7, 1234] {
        let mut first = World::new(seed);
        let mut second = World::new(seed);
        let (a, b) = (first.run().is_ok(), second.run().is_ok());
        assert_eq!(a, b);
        assert!(first.trace().len() > 100);
        assert_eq!(first.trace(), second.trace());
    }
}

/// Seeds in which two nodes of a cluster each waited for the other's answer about a document
/// neither had until the find timeout, before a node answered another's request at once
/// (it looked in the storage they share).
#[test]
fn cluster_nodes_answer_each_other_without_waiting_for_the_find_timeout() {
    for seed in [862, 879, 1890] {
        let mut rng = tandem_sim::SimRng::new(seed);
        assert!(tandem_sim::Config::from_seed(seed, &mut rng).cluster_nodes);
        let stats = World::new(seed).run().unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(stats.find_timeouts, 0, "seed {seed}");
    }
}

/// A seed in which two peers that both lacked a document (neither wanting it any more) loaded
/// it for each other's messages forever: one answered the other's `request` with a `sync` of
/// its empty document, which the other, loading the document again for it, answered with a
/// `request`. A peer that lacks a document now sends no `sync` to a peer that lacks it too.
#[test]
fn peers_lacking_a_document_do_not_load_it_for_each_other_forever() {
    World::new(4134).run().unwrap_or_else(|f| panic!("{f}"));
}
