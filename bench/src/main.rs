//! `tandem-bench`: the same scenarios against tandem-server, a samod server and the JS sync
//! server, each started here on loopback, in one run; one table of figures and ratios, and JSON
//! lines. See the README beside this crate.

mod client;
mod proc_stats;
mod raw_client;
mod report;
#[cfg(feature = "samod")]
mod samod_server;
mod scenarios;
mod system;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use report::{Figure, Outcome};
use system::{ClientKind, Launcher, System};

// The allocator of the tandem-server binary, so that `serve-tandem` runs as the product does
// (and `serve-samod` gets the same one: the two Rust servers are compared like with like).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Why a scenario has no figure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A server could not be started or stopped.
    #[error("server: {0}")]
    Spawn(String),
    /// The client failed.
    #[error("client: {0}")]
    Client(String),
    /// A wait exceeded its patience.
    #[error("stuck {0}")]
    Stuck(String),
    /// A document arrived wrong.
    #[error("wrong result: {0}")]
    Wrong(String),
}

#[derive(Debug, Parser)]
#[command(name = "tandem-bench", about, version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Debug, clap::Args)]
struct RunOptions {
    /// Servers to measure, comma-separated: tandem, samod (needs `--features samod`), js; and
    /// tandem-tmpfs (tandem with its data on `/dev/shm`, to tell the disk's share); tandem-auth
    /// (tandem requiring a token, to tell what access control costs); tandem-postgres (tandem on
    /// a throwaway PostgreSQL; the `cluster` scenario runs three nodes on it).
    #[arg(long, value_delimiter = ',', default_values_t = default_systems())]
    systems: Vec<String>,
    /// Clients to drive the scenarios, comma-separated: tandem (this process), js (automerge-repo
    /// in Node; S1 and S2 only).
    #[arg(long, value_delimiter = ',', default_values_t = ["tandem".to_owned()])]
    clients: Vec<String>,
    /// Scenarios to run, comma-separated: floor, s1, s2, s3, s4, s5 (s5 restarts on s1's data);
    /// and cluster (three tandem nodes on PostgreSQL: round trips on one node and across two,
    /// and S1 created through one node and found through another), s6 (idle clients joined at
    /// once: server memory per connection; then clients holding documents and editing them:
    /// round trips under load and the ramp), s2raw (S2 between two raw-protocol
    /// clients), s7 (a large text and a large binary
    /// history: load, first sync, round trips, others' round trips meanwhile); these three are not
    /// in the default set.
    #[arg(long, value_delimiter = ',', default_values_t = ["floor", "s1", "s2", "s3", "s4", "s5"].map(String::from))]
    scenarios: Vec<String>,
    /// S1 (and S5) sizes.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000, 100_000])]
    sizes: Vec<usize>,
    /// S6 sizes: concurrent clients (`s6`; not in the default set).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 5_000, 10_000])]
    s6_sizes: Vec<usize>,
    /// Documents held for the memory-per-document scenario (`memory`; not in the default set).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
    memory_sizes: Vec<usize>,
    /// S4 sizes: documents on the server.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000])]
    s4_sizes: Vec<usize>,
    /// Round trips timed in S2 and S2raw.
    #[arg(long, default_value_t = 300)]
    trips: usize,
    /// Every scenario at a tiny size (the smoke test).
    #[arg(long)]
    quick: bool,
    /// Give up on one system's run of one scenario after this many seconds, and say so.
    #[arg(long, default_value_t = 600)]
    cap_seconds: u64,
    /// Where to write JSON lines (one object per figure).
    #[arg(long, default_value = "tandem-bench.jsonl")]
    json: PathBuf,
    /// The Node project with the pinned automerge-repo packages.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/js"))]
    js_dir: PathBuf,
}

fn default_systems() -> Vec<String> {
    let mut systems = vec!["tandem".to_owned()];
    if cfg!(feature = "samod") {
        systems.push("samod".to_owned());
    }
    systems.push("js".to_owned());
    systems
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run tandem-server (what the bench spawns as the tandem system).
    #[command(hide = true)]
    ServeTandem(Box<tandem_server::Options>),
    /// Load `count` S1 documents with automerge alone and print KiB of memory per document
    /// (what the `memory` scenario compares the server with).
    #[command(hide = true)]
    HoldAutomerge {
        /// Documents.
        #[arg(long)]
        count: usize,
    },
    /// Run a samod server (what the bench spawns as the samod system).
    #[cfg(feature = "samod")]
    #[command(hide = true)]
    ServeSamod {
        /// Storage directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tandem-bench: no tokio runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::ServeTandem(options)) => {
                tandem_server::run(*options, tandem_server::stop_signal())
                    .await
                    .map_err(|e| e.to_string())
            }
            Some(Command::HoldAutomerge { count }) => scenarios::memory::hold_automerge(count)
                .map(|(loaded, applied)| println!("{loaded} {applied}")),
            #[cfg(feature = "samod")]
            Some(Command::ServeSamod { data_dir }) => samod_server::serve(&data_dir)
                .await
                .map_err(|e| e.to_string()),
            // On a worker thread, as an application's tasks run: awaited on the main thread, the
            // scenarios were a third thread on two cores, woken for every document.
            None => tokio::spawn(run(cli.run))
                .await
                .unwrap_or_else(|e| Err(format!("the run stopped: {e}"))),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tandem-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: RunOptions) -> Result<(), String> {
    let mut systems = Vec::new();
    for name in &options.systems {
        systems.push(System::from_name(name).ok_or_else(|| format!("unknown system {name}"))?);
    }
    let mut clients = Vec::new();
    for name in &options.clients {
        clients.push(ClientKind::from_name(name).ok_or_else(|| format!("unknown client {name}"))?);
    }
    let wants = |s: &str| options.scenarios.iter().any(|x| x == s);
    let (sizes, s4_sizes, trips, readers, changes) = if options.quick {
        (vec![20], vec![20], 10, 3, 5)
    } else {
        (
            options.sizes.clone(),
            options.s4_sizes.clone(),
            options.trips,
            50,
            50,
        )
    };
    let launcher = Launcher::new(options.js_dir.clone());
    let cap = Duration::from_secs(options.cap_seconds);
    let mut figures: Vec<Figure> = Vec::new();
    let mut json = std::fs::File::create(&options.json)
        .map_err(|e| format!("cannot write {}: {e}", options.json.display()))?;
    let mut record = |figure: Figure| {
        use std::io::Write;
        let _ = writeln!(json, "{}", figure.to_json());
        eprintln!("{}", figure.to_json());
        figures.push(figure);
    };

    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tmpfs_scratch = if systems.contains(&System::TandemTmpfs) {
        Some(
            tempfile::tempdir_in("/dev/shm")
                .map_err(|e| format!("tandem-tmpfs needs a writable /dev/shm: {e}"))?,
        )
    } else {
        None
    };
    // A fresh data directory for one system's run of one scenario.
    let dir = |system: System, what: String| -> Result<PathBuf, String> {
        let base = match (&tmpfs_scratch, system) {
            (Some(tmpfs), System::TandemTmpfs) => tmpfs.path(),
            _ => scratch.path(),
        };
        let path = base.join(format!("{}-{what}", system.name()));
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        Ok(path)
    };

    for &size in &sizes {
        if wants("floor") {
            let outcome = match scenarios::floor::run(size) {
                Ok(m) => Outcome::Measured(m),
                Err(e) => Outcome::Skipped(e.to_string()),
            };
            record(Figure {
                scenario: "floor",
                size,
                system: None,
                client: ClientKind::Tandem,
                outcome,
            });
        }
    }
    // The systems each client drives (all, or none when that client is not asked for).
    let driven_by = |client: ClientKind| -> &[System] {
        if clients.contains(&client) {
            &systems
        } else {
            &[]
        }
    };
    for &system in driven_by(ClientKind::Tandem) {
        // S1 at growing sizes; a system that misses the cap is not tried at larger ones.
        let mut gave_up = None;
        for &size in &sizes {
            if !(wants("s1") || wants("s5")) {
                break;
            }
            if let Some(why) = &gave_up {
                record(Figure {
                    scenario: "s1",
                    size,
                    system: Some(system),
                    client: ClientKind::Tandem,
                    outcome: Outcome::Skipped(format!("a smaller size did not finish: {why}")),
                });
                continue;
            }
            let data = dir(system, size.to_string())?;
            let s1 = capped(cap, scenarios::bulk::run(&launcher, system, size, &data)).await;
            let urls = match s1 {
                Ok((m, urls)) => {
                    record(Figure {
                        scenario: "s1",
                        size,
                        system: Some(system),
                        client: ClientKind::Tandem,
                        outcome: Outcome::Measured(m),
                    });
                    urls
                }
                Err(why) => {
                    record(Figure {
                        scenario: "s1",
                        size,
                        system: Some(system),
                        client: ClientKind::Tandem,
                        outcome: Outcome::Skipped(why.clone()),
                    });
                    gave_up = Some(why);
                    continue;
                }
            };
            if wants("s5") {
                let outcome = measured(
                    cap,
                    scenarios::cold_start::run(&launcher, system, &data, &urls),
                )
                .await;
                record(Figure {
                    scenario: "s5",
                    size,
                    system: Some(system),
                    client: ClientKind::Tandem,
                    outcome,
                });
            }
        }
        if wants("s2") {
            let data = dir(system, "s2".into())?;
            let outcome = measured(
                cap,
                scenarios::latency::run(&launcher, system, trips, &data),
            )
            .await;
            record(Figure {
                scenario: "s2",
                size: trips,
                system: Some(system),
                client: ClientKind::Tandem,
                outcome,
            });
        }
        if wants("s2raw") {
            let data = dir(system, "s2raw".into())?;
            let outcome = measured(
                cap,
                scenarios::raw_latency::run(&launcher, system, trips, &data),
            )
            .await;
            record(Figure {
                scenario: "s2raw",
                size: trips,
                system: Some(system),
                client: ClientKind::Tandem,
                outcome,
            });
        }
        if wants("s3") {
            let data = dir(system, "s3".into())?;
            let outcome = measured(
                cap,
                scenarios::fan_out::run(&launcher, system, readers, changes, &data),
            )
            .await;
            record(Figure {
                scenario: "s3",
                size: readers,
                system: Some(system),
                client: ClientKind::Tandem,
                outcome,
            });
        }
        if wants("memory") {
            let sizes = if options.quick {
                vec![20]
            } else {
                options.memory_sizes.clone()
            };
            let mut gave_up: Option<String> = None;
            for count in sizes {
                let data = dir(system, format!("memory-{count}"))?;
                let outcome = match &gave_up {
                    Some(why) => Outcome::Skipped(format!("fewer documents did not finish: {why}")),
                    None => {
                        measured(
                            cap,
                            scenarios::memory::per_document(&launcher, system, count, &data),
                        )
                        .await
                    }
                };
                if let (Outcome::Skipped(why), None) = (&outcome, &gave_up) {
                    gave_up = Some(why.clone());
                }
                record(Figure {
                    scenario: "memory",
                    size: count,
                    system: Some(system),
                    client: ClientKind::Tandem,
                    outcome,
                });
            }
        }
        if wants("s6") {
            let sizes = if options.quick {
                vec![20]
            } else {
                options.s6_sizes.clone()
            };
            for count in sizes {
                let data = dir(system, format!("s6-{count}"))?;
                let outcome = measured(
                    cap,
                    scenarios::connections::idle(&launcher, system, count, &data),
                )
                .await;
                record(Figure {
                    scenario: "s6-idle",
                    size: count,
                    system: Some(system),
                    client: ClientKind::Tandem,
                    outcome,
                });
            }
            let shapes = if options.quick {
                vec![scenarios::edit_load::Shape {
                    clients: 20,
                    period: Duration::from_secs(1),
                    steady: Duration::from_secs(2),
                    ramp: vec![2],
                    step: Duration::from_secs(1),
                }]
            } else {
                options
                    .s6_sizes
                    .iter()
                    .map(|&clients| scenarios::edit_load::Shape {
                        clients,
                        period: Duration::from_secs(10),
                        steady: Duration::from_secs(60),
                        ramp: vec![2, 4, 8, 16],
                        step: Duration::from_secs(10),
                    })
                    .collect()
            };
            // A system that misses the cap is not tried with more clients.
            let mut gave_up: Option<String> = None;
            for shape in shapes {
                let data = dir(system, format!("s6-load-{}", shape.clients))?;
                let outcome = match &gave_up {
                    Some(why) => Outcome::Skipped(format!("fewer clients did not finish: {why}")),
                    None => {
                        measured(
                            cap,
                            scenarios::edit_load::run(&launcher, system, &shape, &data),
                        )
                        .await
                    }
                };
                if let (Outcome::Skipped(why), None) = (&outcome, &gave_up) {
                    gave_up = Some(why.clone());
                }
                record(Figure {
                    scenario: "s6-load",
                    size: shape.clients,
                    system: Some(system),
                    client: ClientKind::Tandem,
                    outcome,
                });
            }
        }
        if wants("s7") {
            let kinds = if options.quick {
                [
                    scenarios::large_document::Kind::Text { changes: 20 },
                    scenarios::large_document::Kind::Binary {
                        changes: 5,
                        bytes: 10_000,
                    },
                ]
            } else {
                [
                    scenarios::large_document::Kind::Text { changes: 2_000 },
                    scenarios::large_document::Kind::Binary {
                        changes: 50,
                        bytes: 1 << 20,
                    },
                ]
            };
            for kind in kinds {
                let data = dir(system, kind.scenario().into())?;
                let outcome = measured(
                    cap,
                    scenarios::large_document::run(&launcher, system, kind, 20, &data),
                )
                .await;
                record(Figure {
                    scenario: kind.scenario(),
                    size: kind.size(),
                    system: Some(system),
                    client: ClientKind::Tandem,
                    outcome,
                });
            }
        }
        if wants("s4") {
            for &documents in &s4_sizes {
                let data = dir(system, format!("s4-{documents}"))?;
                let shape = if options.quick {
                    scenarios::many::Shape {
                        documents,
                        clients: 4,
                        per_client: 5,
                    }
                } else {
                    scenarios::many::Shape {
                        documents,
                        clients: 100,
                        per_client: 100,
                    }
                };
                let outcome =
                    measured(cap, scenarios::many::run(&launcher, system, shape, &data)).await;
                record(Figure {
                    scenario: "s4",
                    size: documents,
                    system: Some(system),
                    client: ClientKind::Tandem,
                    outcome,
                });
            }
        }
    }
    if wants("cluster") {
        let data = dir(System::TandemPostgres, "cluster-trips".into())?;
        let outcome = measured(
            cap,
            scenarios::cluster::round_trips(&launcher, trips, &data),
        )
        .await;
        record(Figure {
            scenario: "cluster-trips",
            size: trips,
            system: Some(System::TandemPostgres),
            client: ClientKind::Tandem,
            outcome,
        });
        // The floor of the design not taken: changes told through LISTEN/NOTIFY.
        let data = dir(System::TandemPostgres, "notify-floor".into())?;
        let outcome = measured(cap, scenarios::notify::run(&launcher, trips, &data)).await;
        record(Figure {
            scenario: "notify-floor",
            size: trips,
            system: Some(System::TandemPostgres),
            client: ClientKind::Tandem,
            outcome,
        });
        for &size in &sizes {
            let data = dir(System::TandemPostgres, format!("cluster-s1-{size}"))?;
            let outcome =
                measured(cap, scenarios::cluster::bulk_across(&launcher, size, &data)).await;
            record(Figure {
                scenario: "cluster-s1",
                size,
                system: Some(System::TandemPostgres),
                client: ClientKind::Tandem,
                outcome,
            });
        }
    }
    if clients.contains(&ClientKind::Js) {
        let unsupported: Vec<&str> = ["s3", "s4", "s5"]
            .into_iter()
            .filter(|s| wants(s))
            .collect();
        if !unsupported.is_empty() {
            eprintln!(
                "tandem-bench: the JS client runs S1 and S2 only; not {}",
                unsupported.join(", ")
            );
        }
    }
    for &system in driven_by(ClientKind::Js) {
        let mut runs: Vec<(&'static str, usize)> = Vec::new();
        if wants("s1") {
            runs.extend(sizes.iter().map(|&size| ("s1", size)));
        }
        if wants("s2") {
            runs.push(("s2", trips));
        }
        let mut gave_up = None;
        for (scenario, size) in runs {
            let outcome = match (&gave_up, scenario) {
                (Some(why), "s1") => {
                    Outcome::Skipped(format!("a smaller size did not finish: {why}"))
                }
                _ => {
                    let data = dir(system, format!("js-client-{scenario}-{size}"))?;
                    let run = scenarios::js_client::run(&launcher, system, scenario, size, &data);
                    match capped(cap, run).await {
                        Ok(m) => Outcome::Measured(m),
                        Err(why) => {
                            if scenario == "s1" {
                                gave_up = Some(why.clone());
                            }
                            Outcome::Skipped(why)
                        }
                    }
                }
            };
            record(Figure {
                scenario,
                size,
                system: Some(system),
                client: ClientKind::Js,
                outcome,
            });
        }
    }
    let mut stdout = std::io::stdout();
    report::print_table(&figures, &mut stdout).map_err(|e| e.to_string())?;
    Ok(())
}

/// [`capped`], as a figure's outcome.
async fn measured(
    cap: Duration,
    scenario: impl std::future::Future<Output = Result<report::Measurement, BenchError>>,
) -> Outcome {
    match capped(cap, scenario).await {
        Ok(m) => Outcome::Measured(m),
        Err(why) => Outcome::Skipped(why),
    }
}

/// Runs a scenario with the time cap; an error or the cap becomes the reason it was skipped.
async fn capped<T>(
    cap: Duration,
    scenario: impl std::future::Future<Output = Result<T, BenchError>>,
) -> Result<T, String> {
    match tokio::time::timeout(cap, scenario).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("did not finish within {} s", cap.as_secs())),
    }
}
