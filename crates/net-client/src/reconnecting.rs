//! [`Reconnecting`]: a [`Dial`] made into a client that keeps one connection to its server.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use rand::Rng;
use tandem_core::network::handshake::reconnect_delay;
use tandem_core::{Connection, ConnectionState, Connections, LocalPeer};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// Why one attempt ended without a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Try again later (the server is down, the network failed, the handshake broke off).
    Failed(String),
    /// The server said no; trying again would get the same answer.
    Refused(String),
}

/// One attempt to reach the server over a transport's own medium, up to the server's `peer`.
#[async_trait]
pub trait Dial: Send + Sync + 'static {
    /// The server, as logs name it (a URL, an address, a socket path).
    fn target(&self) -> String;

    /// Connects and completes the handshake: the connection, and a flag that turns `true` when
    /// it has ended. The attempt is abandoned after [`Retry::handshake_timeout`].
    async fn dial(&self, local: &LocalPeer)
        -> Result<(Connection, watch::Receiver<bool>), Attempt>;
}

/// When to try again, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Wait before the first retry (default 250 ms); each failed attempt doubles it.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (default 30 s). Each wait is jittered down by up to half,
    /// so that clients of a restarted server do not all come back at once.
    pub max_backoff: Duration,
    /// Stop after this many failed attempts in a row; `None` (the default) never gives up.
    pub give_up_after: Option<u32>,
    /// Time from starting to connect to the server's `peer` (default 10 s).
    pub handshake_timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            give_up_after: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// The wait before the next attempt, after `failures` failed attempts in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let jitter = rand::rng().random_range(0.5..=1.0);
        reconnect_delay(self.initial_backoff, self.max_backoff, failures, jitter)
    }
}

/// A client that keeps one connection to its server: what a transport's client adapter holds,
/// and hands its `start` and `first_attempt` to.
pub struct Reconnecting<D> {
    dial: D,
    retry: Retry,
    state: watch::Sender<ConnectionState>,
    /// Turns `true` once the first attempt has ended (the connection, if any, handed over).
    first_attempt: watch::Sender<bool>,
}

impl<D: Dial> std::fmt::Debug for Reconnecting<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnecting")
            .field("target", &self.dial.target())
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl<D: Dial> Reconnecting<D> {
    /// A client dialling with `dial`. Nothing connects until [`start`](Self::start).
    pub fn new(dial: D, retry: Retry) -> Self {
        Reconnecting {
            dial,
            retry,
            state: watch::channel(ConnectionState::Offline).0,
            first_attempt: watch::channel(false).0,
        }
    }

    /// The connection state, now and as it changes.
    pub fn states(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    /// Starts dialling as `local` (on the current tokio runtime): the connections, one at a
    /// time, for the repo. Dialling stops when the repo drops the stream.
    pub fn start(self, local: LocalPeer) -> Connections {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(self.run(local, tx));
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|c| (c, rx))
        }))
    }

    /// Resolves once the first attempt has ended, with a connection handed over or not (also
    /// when the client stops), for [`NetworkAdapter::first_attempt`](tandem_core::NetworkAdapter::first_attempt).
    pub fn first_attempt(&self) -> BoxFuture<'static, ()> {
        let mut ended = self.first_attempt.subscribe();
        Box::pin(async move {
            let _ = ended.wait_for(|ended| *ended).await;
        })
    }

    async fn run(self, local: LocalPeer, repo: mpsc::Sender<Connection>) {
        let Reconnecting {
            dial,
            retry,
            state,
            first_attempt,
        } = self;
        let target = dial.target();
        let mut failures: u32 = 0;
        loop {
            state.send_replace(ConnectionState::Connecting);
            let attempt = tokio::time::timeout(retry.handshake_timeout, dial.dial(&local));
            match attempt.await {
                Ok(Ok((connection, mut finished))) => {
                    failures = 0;
                    info!(%target, server = %connection.remote.peer_id, "connected");
                    if repo.send(connection).await.is_err() {
                        return; // the repo has stopped
                    }
                    state.send_replace(ConnectionState::Online);
                    first_attempt.send_replace(true);
                    tokio::select! {
                        _ = async { let _ = finished.wait_for(|done| *done).await; } => {}
                        _ = repo.closed() => return,
                    }
                    info!(%target, "disconnected");
                }
                Ok(Err(Attempt::Refused(why))) => {
                    error!(%target, %why, "the server refused us; not retrying");
                    state.send_replace(ConnectionState::Stopped(why));
                    return;
                }
                Ok(Err(Attempt::Failed(why))) => {
                    failures += 1;
                    debug!(%target, %why, failures, "connection attempt failed");
                }
                Err(_) => {
                    failures += 1;
                    debug!(%target, failures, "connection attempt timed out");
                }
            }
            first_attempt.send_replace(true);
            if retry.give_up_after.is_some_and(|limit| failures >= limit) {
                warn!(%target, failures, "giving up");
                state.send_replace(ConnectionState::Stopped(format!(
                    "gave up after {failures} failed attempts"
                )));
                return;
            }
            state.send_replace(ConnectionState::Offline);
            // After a connection that worked (no failures), the first retry is quick.
            tokio::select! {
                _ = tokio::time::sleep(retry.backoff(failures)) => {}
                _ = repo.closed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use futures::StreamExt;
    use tandem_core::PeerMetadata;

    use super::*;

    fn peer(id: &str) -> LocalPeer {
        LocalPeer {
            peer_id: id.into(),
            metadata: PeerMetadata::default(),
        }
    }

    /// Fails its first `failing` attempts as `fails_with` says, then connects (to an in-memory
    /// server end; the connection lasts until `end` turns `true`).
    struct Flaky {
        failing: u32,
        fails_with: fn(String) -> Attempt,
        attempts: Arc<AtomicU32>,
        end: watch::Sender<bool>,
    }

    #[async_trait]
    impl Dial for Flaky {
        fn target(&self) -> String {
            "flaky".into()
        }

        async fn dial(
            &self,
            local: &LocalPeer,
        ) -> Result<(Connection, watch::Receiver<bool>), Attempt> {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if attempt <= self.failing {
                return Err((self.fails_with)(format!("attempt {attempt}")));
            }
            let (ours, _theirs) = Connection::in_memory_pair(local, &peer("server"), 8);
            self.end.send_replace(false);
            Ok((ours, self.end.subscribe()))
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        let retry = Retry {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..Retry::default()
        };
        for (failures, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let wait = retry.backoff(failures).as_millis();
            assert!(
                (full / 2..=full).contains(&wait),
                "after {failures} failures waited {wait} ms, expected {}..={full}",
                full / 2
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failed_attempts_are_retried_until_one_connects_and_again_after_it_ends() {
        let attempts = Arc::new(AtomicU32::new(0));
        let (end, _) = watch::channel(false);
        let end_connection = end.clone();
        let client = Reconnecting::new(
            Flaky {
                failing: 3,
                fails_with: Attempt::Failed,
                attempts: attempts.clone(),
                end,
            },
            Retry::default(),
        );
        let mut states = client.states();
        let first_attempt = client.first_attempt();
        let mut connections = client.start(peer("client"));
        first_attempt.await;
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1,
            "the first attempt ended"
        );
        let connection = connections.next().await.expect("a connection");
        assert_eq!(connection.remote.peer_id, "server".into());
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        states
            .wait_for(|s| *s == ConnectionState::Online)
            .await
            .expect("online");
        end_connection.send_replace(true);
        let again = connections.next().await.expect("connected again");
        assert_eq!(again.remote.peer_id, "server".into());
        assert_eq!(attempts.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn it_gives_up_after_the_configured_failures() {
        let attempts = Arc::new(AtomicU32::new(0));
        let client = Reconnecting::new(
            Flaky {
                failing: u32::MAX,
                fails_with: Attempt::Failed,
                attempts: attempts.clone(),
                end: watch::channel(false).0,
            },
            Retry {
                give_up_after: Some(3),
                ..Retry::default()
            },
        );
        let mut states = client.states();
        let _connections = client.start(peer("client"));
        let stopped = states
            .wait_for(|s| matches!(s, ConnectionState::Stopped(_)))
            .await
            .expect("stopped")
            .clone();
        assert_eq!(
            stopped,
            ConnectionState::Stopped("gave up after 3 failed attempts".into())
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_stops_at_once() {
        let attempts = Arc::new(AtomicU32::new(0));
        let client = Reconnecting::new(
            Flaky {
                failing: u32::MAX,
                fails_with: Attempt::Refused,
                attempts: attempts.clone(),
                end: watch::channel(false).0,
            },
            Retry::default(),
        );
        let mut states = client.states();
        let first_attempt = client.first_attempt();
        let mut connections = client.start(peer("client"));
        let stopped = states
            .wait_for(|s| matches!(s, ConnectionState::Stopped(_)))
            .await
            .expect("stopped")
            .clone();
        assert_eq!(stopped, ConnectionState::Stopped("attempt 1".into()));
        first_attempt.await;
        assert!(connections.next().await.is_none(), "no connection, ever");
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "no second attempt");
    }
}
