//! The connecting side: connect, `join`, wait for `peer`, hand the server to the repo; connect
//! again with exponential backoff and jitter whenever the stream ends.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tandem_core::network::handshake::{join, read_answer, ClientOutcome};
use tandem_core::{
    Connection, ConnectionState, Connections, LocalPeer, Message, NetworkAdapter, NetworkError,
};
use tandem_net_client::{Attempt, Dial, Reconnecting, Retry};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_util::codec::Framed;
use tracing::debug;

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
    client: Reconnecting<Dialer>,
}

/// One attempt to reach the server at `endpoint`.
struct Dialer {
    endpoint: Endpoint,
    config: ClientConfig,
}

impl std::fmt::Debug for TcpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TcpClient").field(&self.client).finish()
    }
}

impl TcpClient {
    /// A client of the server at `endpoint`. Nothing connects until the repo starts the
    /// adapter.
    pub fn new(endpoint: Endpoint, config: ClientConfig) -> Self {
        let retry = Retry {
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
            give_up_after: config.give_up_after,
            handshake_timeout: config.handshake_timeout,
        };
        TcpClient {
            client: Reconnecting::new(Dialer { endpoint, config }, retry),
        }
    }

    /// The connection state, now and as it changes.
    pub fn states(&self) -> watch::Receiver<ConnectionState> {
        self.client.states()
    }
}

#[async_trait]
impl NetworkAdapter for TcpClient {
    async fn start(self: Box<Self>, local: LocalPeer) -> Result<Connections, NetworkError> {
        Ok(self.client.start(local))
    }

    fn first_attempt(&self) -> Option<futures::future::BoxFuture<'static, ()>> {
        Some(self.client.first_attempt())
    }
}

#[async_trait]
impl Dial for Dialer {
    fn target(&self) -> String {
        self.endpoint.to_string()
    }

    async fn dial(
        &self,
        local: &LocalPeer,
    ) -> Result<(Connection, watch::Receiver<bool>), Attempt> {
        connect(&self.endpoint, local, &self.config).await
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
