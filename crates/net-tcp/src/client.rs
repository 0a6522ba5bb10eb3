//! The connecting side: connect, `join`, wait for `peer`, hand the server to the repo; connect
//! again with exponential backoff and jitter whenever the stream ends.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use tandem_core::network::handshake::{join, read_answer, reconnect_delay, ClientOutcome};
use tandem_core::{
    Connection, ConnectionState, Connections, LocalPeer, Message, NetworkAdapter, NetworkError,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;
use tracing::{debug, error, info, warn};

use crate::framing::{codec, DEFAULT_MAX_FRAME};
use crate::stream::connection;
use crate::Endpoint;

/// Client tunables.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Wait before the first retry (default 250 ms); each failed attempt doubles it.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (default 30 s), jittered down by up to half.
    pub max_backoff: Duration,
    /// Stop after this many failed attempts in a row; `None` (the default) never gives up.
    pub give_up_after: Option<u32>,
    /// Time from starting to connect to the server's `peer` (default 10 s).
    pub handshake_timeout: Duration,
    /// Largest frame accepted from the server (default 64 MiB).
    pub max_frame_size: usize,
    /// A write that makes no progress for this long drops the connection (default 30 s).
    pub write_timeout: Duration,
    /// TCP keepalive: probe a connection idle this long, so that a server whose machine
    /// vanished is noticed and connected to again (default 15 s).
    pub tcp_keepalive: Option<Duration>,
    /// What the repo lets the server do (default: whatever the share policy allows).
    pub grant: tandem_core::Grant,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            give_up_after: None,
            handshake_timeout: Duration::from_secs(10),
            max_frame_size: DEFAULT_MAX_FRAME,
            write_timeout: Duration::from_secs(30),
            tcp_keepalive: Some(Duration::from_secs(15)),
            grant: tandem_core::Grant::default(),
        }
    }
}

/// A client of one server over TCP or a Unix socket, as a [`NetworkAdapter`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tandem_net_tcp::{ClientConfig, TcpClient};
/// let client = TcpClient::new("tcp://127.0.0.1:4100".parse()?, ClientConfig::default());
/// let mut states = client.states();
/// let repo = tandem_repo::Repo::builder().network(client).start().await?;
/// states.wait_for(|s| *s == tandem_core::ConnectionState::Online).await?;
/// # Ok(()) }
/// ```
pub struct TcpClient {
    endpoint: Endpoint,
    config: ClientConfig,
    state: watch::Sender<ConnectionState>,
    /// Turns `true` once the first attempt has ended (the connection, if any, handed over).
    first_attempt: watch::Sender<bool>,
}

impl std::fmt::Debug for TcpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpClient")
            .field("endpoint", &self.endpoint)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl TcpClient {
    /// A client of the server at `endpoint`. Nothing connects until the repo starts the
    /// adapter.
    pub fn new(endpoint: Endpoint, config: ClientConfig) -> Self {
        TcpClient {
            endpoint,
            config,
            state: watch::channel(ConnectionState::Offline).0,
            first_attempt: watch::channel(false).0,
        }
    }

    /// The connection state, now and as it changes.
    pub fn states(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }
}

#[async_trait]
impl NetworkAdapter for TcpClient {
    async fn start(self: Box<Self>, local: LocalPeer) -> Result<Connections, NetworkError> {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(run(*self, local, tx));
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|c| (c, rx))
        })))
    }

    fn first_attempt(&self) -> Option<futures::future::BoxFuture<'static, ()>> {
        let mut ended = self.first_attempt.subscribe();
        // Also resolves if the client stops (the sender goes with it).
        Some(Box::pin(async move {
            let _ = ended.wait_for(|ended| *ended).await;
        }))
    }
}

/// Why one attempt ended without a connection.
enum Attempt {
    /// Try again later.
    Failed(String),
    /// The server said no; trying again would get the same answer.
    Refused(String),
}

async fn run(client: TcpClient, local: LocalPeer, repo: mpsc::Sender<Connection>) {
    let TcpClient {
        endpoint,
        config,
        state,
        first_attempt,
    } = client;
    let mut failures: u32 = 0;
    loop {
        state.send_replace(ConnectionState::Connecting);
        let attempt = tokio::time::timeout(
            config.handshake_timeout,
            connect(&endpoint, &local, &config),
        );
        match attempt.await {
            Ok(Ok((connection, mut finished))) => {
                failures = 0;
                info!(%endpoint, server = %connection.remote.peer_id, "connected");
                if repo.send(connection).await.is_err() {
                    return; // the repo has stopped
                }
                state.send_replace(ConnectionState::Online);
                first_attempt.send_replace(true);
                tokio::select! {
                    _ = async { let _ = finished.wait_for(|done| *done).await; } => {}
                    _ = repo.closed() => return,
                }
                info!(%endpoint, "disconnected");
            }
            Ok(Err(Attempt::Refused(why))) => {
                error!(%endpoint, %why, "the server refused us; not retrying");
                state.send_replace(ConnectionState::Stopped(why));
                return;
            }
            Ok(Err(Attempt::Failed(why))) => {
                failures += 1;
                debug!(%endpoint, %why, failures, "connection attempt failed");
            }
            Err(_) => {
                failures += 1;
                debug!(%endpoint, failures, "connection attempt timed out");
            }
        }
        first_attempt.send_replace(true);
        if config.give_up_after.is_some_and(|limit| failures >= limit) {
            warn!(%endpoint, failures, "giving up");
            state.send_replace(ConnectionState::Stopped(format!(
                "gave up after {failures} failed attempts"
            )));
            return;
        }
        state.send_replace(ConnectionState::Offline);
        let jitter = rand::rng().random_range(0.5..=1.0);
        let wait = reconnect_delay(config.initial_backoff, config.max_backoff, failures, jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = repo.closed() => return,
        }
    }
}

async fn connect(
    endpoint: &Endpoint,
    local: &LocalPeer,
    config: &ClientConfig,
) -> Result<(Connection, watch::Receiver<bool>), Attempt> {
    let failed = |e: std::io::Error| Attempt::Failed(e.to_string());
    match endpoint {
        Endpoint::Tcp(address) => {
            let stream = tokio::net::TcpStream::connect(address.as_str())
                .await
                .map_err(failed)?;
            stream.set_nodelay(true).map_err(failed)?;
            if let Some(idle) = config.tcp_keepalive {
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(idle)
                    .with_interval(idle);
                socket2::SockRef::from(&stream)
                    .set_tcp_keepalive(&keepalive)
                    .map_err(failed)?;
            }
            join_over(stream, local, config).await
        }
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(failed)?;
            join_over(stream, local, config).await
        }
    }
}

async fn join_over<S>(
    stream: S,
    local: &LocalPeer,
    config: &ClientConfig,
) -> Result<(Connection, watch::Receiver<bool>), Attempt>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut framed = Framed::new(stream, codec(config.max_frame_size));
    framed
        .send(Bytes::from(join(local).encode()))
        .await
        .map_err(|e| Attempt::Failed(e.to_string()))?;
    loop {
        let frame = framed
            .next()
            .await
            .ok_or_else(|| Attempt::Failed("closed before `peer`".into()))?
            .map_err(|e| Attempt::Failed(e.to_string()))?;
        let message = Message::decode(&frame)
            .map_err(|e| Attempt::Failed(format!("undecodable frame before `peer`: {e}")))?;
        match read_answer(&message) {
            ClientOutcome::Accepted(remote) => {
                let (mut connection, finished) = connection(framed, remote, config.write_timeout);
                connection.grant = config.grant.clone();
                return Ok((connection, finished));
            }
            ClientOutcome::Refused(why) => return Err(Attempt::Refused(why)),
            ClientOutcome::NotAnAnswer => {
                debug!(kind = message.type_name(), "message before `peer`; dropped");
            }
        }
    }
}
