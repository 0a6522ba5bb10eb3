//! The one timer the tasks wait on beside their inputs: the next deadline an actor asked for.

use tokio::time::Instant;

/// Resolves at `deadline`, or never when there is none.
pub(crate) async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
