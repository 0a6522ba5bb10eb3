//! The accepting side: listen on a TCP port or a Unix socket, answer each stream's `join`, hand
//! each peer to the repo.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tandem_core::network::handshake::{answer_join, ServerDecision};
use tandem_core::{Connection, Connections, LocalPeer, Message, NetworkAdapter, NetworkError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, ToSocketAddrs, UnixListener};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{timeout_at, Instant};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use crate::framing::{codec, DEFAULT_MAX_FRAME};
use crate::stream::connection;
use crate::Endpoint;

/// Server tunables.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted; a larger one closes that connection. Default
    /// [`DEFAULT_MAX_FRAME`].
    pub max_frame_size: usize,
    /// Time from accepting a stream to its `join`; slower streams are closed. Default 10 s.
    pub handshake_timeout: Duration,
    /// Streams allowed in the handshake at once; more wait for a slot (default 1024).
    pub max_pending_handshakes: usize,
    /// A write that makes no progress for this long closes the connection (default 30 s).
    pub write_timeout: Duration,
    /// TCP keepalive: probe a connection idle this long, so that a peer whose machine vanished
    /// is noticed (default 15 s; `None` leaves the system's setting). Unix sockets need none.
    pub tcp_keepalive: Option<Duration>,
    /// What the repo lets every peer of this server do (default: whatever the share policy
    /// allows). The transport authenticates nobody: bind it where only trusted programs reach
    /// it (loopback, a private network, a Unix socket's file permissions).
    pub grant: tandem_core::Grant,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_size: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 1024,
            write_timeout: Duration::from_secs(30),
            tcp_keepalive: Some(Duration::from_secs(15)),
            grant: tandem_core::Grant::default(),
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A server on a TCP port or a Unix socket, as a [`NetworkAdapter`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tandem_net_tcp::{ServerConfig, TcpServer};
/// let server = TcpServer::bind("127.0.0.1:4100", ServerConfig::default()).await?;
/// println!("listening on {}", server.local_endpoint()?);
/// let repo = tandem_repo::Repo::builder().network(server).start().await?;
/// # Ok(()) }
/// ```
pub struct TcpServer {
    listener: Listener,
    config: ServerConfig,
}

impl std::fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpServer")
            .field("endpoint", &self.local_endpoint().ok())
            .finish_non_exhaustive()
    }
}

impl TcpServer {
    /// Listens on a TCP address (port 0 for any free port).
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: ServerConfig,
    ) -> Result<TcpServer, NetworkError> {
        let listener = TcpListener::bind(addr).await?;
        Ok(TcpServer {
            listener: Listener::Tcp(listener),
            config,
        })
    }

    /// Listens on a Unix socket at `path`. The path must not exist yet: a socket left by a
    /// process that died is the application's to remove, since it may as well be another
    /// live server's.
    pub fn bind_unix(
        path: impl Into<PathBuf>,
        config: ServerConfig,
    ) -> Result<TcpServer, NetworkError> {
        let path = path.into();
        let listener = UnixListener::bind(&path)?;
        Ok(TcpServer {
            listener: Listener::Unix(listener, path),
            config,
        })
    }

    /// Listens at an [`Endpoint`].
    pub async fn bind_endpoint(
        endpoint: &Endpoint,
        config: ServerConfig,
    ) -> Result<TcpServer, NetworkError> {
        match endpoint {
            Endpoint::Tcp(address) => TcpServer::bind(address.as_str(), config).await,
            Endpoint::Unix(path) => TcpServer::bind_unix(path.clone(), config),
        }
    }

    /// Where it listens, as a client would be given it.
    pub fn local_endpoint(&self) -> Result<Endpoint, NetworkError> {
        Ok(match &self.listener {
            Listener::Tcp(listener) => Endpoint::Tcp(listener.local_addr()?.to_string()),
            Listener::Unix(_, path) => Endpoint::Unix(path.clone()),
        })
    }
}

#[async_trait]
impl NetworkAdapter for TcpServer {
    async fn start(self: Box<Self>, local: LocalPeer) -> Result<Connections, NetworkError> {
        info!(endpoint = ?self.local_endpoint().ok(), "accepting connections");
        let TcpServer { listener, config } = *self;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, Arc::new(config), local, tx));
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|c| (c, rx))
        })))
    }
}

async fn accept_loop(
    listener: Listener,
    config: Arc<ServerConfig>,
    local: LocalPeer,
    repo: mpsc::Sender<Connection>,
) {
    let slots = Arc::new(Semaphore::new(config.max_pending_handshakes));
    loop {
        // Waiting for a slot first: a flood of connections waits in the kernel's backlog
        // rather than in our memory.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = repo.closed() => return,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            accepted = accept(&listener, &config) => accepted,
            _ = repo.closed() => return, // the repo is gone
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (config, local, repo) = (config.clone(), local.clone(), repo.clone());
        tokio::spawn(async move {
            let admitted = match stream {
                Accepted::Tcp(stream) => admit(stream, &local, &config).await,
                Accepted::Unix(stream) => admit(stream, &local, &config).await,
            };
            drop(slot);
            match admitted {
                Ok(connection) => {
                    let _ = repo.send(connection).await;
                }
                Err(error) => debug!(%error, "connection closed during the handshake"),
            }
        });
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener, config: &ServerConfig) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(listener) => {
            let (stream, _) = listener.accept().await?;
            // Each message is written whole; waiting to fill a segment only adds latency.
            stream.set_nodelay(true)?;
            if let Some(idle) = config.tcp_keepalive {
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(idle)
                    .with_interval(idle);
                socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
            }
            Ok(Accepted::Tcp(stream))
        }
        Listener::Unix(listener, _) => Ok(Accepted::Unix(listener.accept().await?.0)),
    }
}

/// Reads the stream's `join` within the handshake timeout and answers it.
async fn admit<S>(
    stream: S,
    local: &LocalPeer,
    config: &ServerConfig,
) -> Result<Connection, NetworkError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = Instant::now() + config.handshake_timeout;
    let mut framed = Framed::new(stream, codec(config.max_frame_size));
    let first = timeout_at(deadline, framed.next())
        .await
        .map_err(|_| NetworkError::Handshake("no `join` in time".into()))?
        .ok_or_else(|| NetworkError::Handshake("closed before `join`".into()))??;
    let first = Message::decode(&first)?;
    match answer_join(local, &first, None) {
        ServerDecision::Accept { remote, reply } => {
            timeout_at(deadline, framed.send(Bytes::from(reply.encode())))
                .await
                .map_err(|_| NetworkError::Handshake("could not answer in time".into()))??;
            debug!(peer = %remote.peer_id, "joined");
            let (mut connection, _finished) = connection(framed, remote, config.write_timeout);
            connection.grant = config.grant.clone();
            Ok(connection)
        }
        ServerDecision::Reject { reply, reason } => {
            if let Some(reply) = reply {
                let _ = timeout_at(deadline, framed.send(Bytes::from(reply.encode()))).await;
            }
            Err(NetworkError::Handshake(reason))
        }
    }
}
