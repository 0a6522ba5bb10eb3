//! Find timeouts in runs with cluster nodes and without: `cargo run -p tandem-sim --release
//! --example probe_timeouts [seeds]`.
fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let (mut cluster, mut other) = ((0u64, 0usize), (0u64, 0usize));
    for seed in 0..seeds {
        let mut rng = tandem_sim::SimRng::new(seed);
        let is_cluster = tandem_sim::Config::from_seed(seed, &mut rng).cluster_nodes;
        let stats = tandem_sim::World::new(seed).run().expect("passes");
        let slot = if is_cluster { &mut cluster } else { &mut other };
        slot.0 += 1;
        slot.1 += stats.find_timeouts;
    }
    println!(
        "with cluster nodes: {} runs, {} finds settled by timeout; without: {} runs, {}",
        cluster.0, cluster.1, other.0, other.1
    );
}
