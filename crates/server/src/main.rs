//! `tandem-server`: see the crate documentation and `--help`.

use clap::Parser;
use tandem_server::{migrate, run, stop_signal, Cli, LogFormat, Subcommand};
use tracing_subscriber::EnvFilter;

// glibc's malloc grows and trims its per-thread heaps over and over when many small documents
// are loaded and synced (an mprotect and page faults each time); mimalloc halves the time of
// `cargo bench -p tandem-repo --bench sync`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Cli {
        command,
        serve: options,
    } = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match options.log_format {
        // One JSON object per line, with the fields of the spans it happened in (a document's
        // task runs in a span naming its id).
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    // automerge panics on some input it should refuse; tandem catches those panics and cuts the
    // sender off, but the default hook would still print each one (with a backtrace under
    // RUST_BACKTRACE), one per hostile message. The server logs them as its other events.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // Caught ones are followed by a line saying what tandem did about them.
        tracing::error!(panic = message, %location, "panicked");
    }));
    if let Some(Subcommand::Migrate(migration)) = command {
        return match migrate::migrate(&migration).await {
            Ok(migrated) => {
                println!(
                    "copied {} keys ({} bytes); {} documents have the same heads in both stores",
                    migrated.keys, migrated.bytes, migrated.documents
                );
                std::process::ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tandem-server migrate: {error}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match run(options, stop_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tandem-server: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
