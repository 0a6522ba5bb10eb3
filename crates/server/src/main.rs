//! `tandem-server`: see the crate documentation and `--help`.

use clap::Parser;
use tandem_server::{run, stop_signal, Options};
use tracing_subscriber::EnvFilter;

// glibc's malloc grows and trims its per-thread heaps over and over when many small documents
// are loaded and synced (an mprotect and page faults each time); mimalloc halves the time of
// `cargo bench -p tandem-repo --bench sync`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let options = Options::parse();
    match run(options, stop_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tandem-server: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
