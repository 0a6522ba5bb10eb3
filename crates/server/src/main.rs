//! `tandem-server`: see the crate documentation and `--help`.

use clap::Parser;
use tandem_server::{run, stop_signal, Options};
use tracing_subscriber::EnvFilter;

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
