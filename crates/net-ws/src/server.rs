//! The server side: accept sockets, answer `join`, hand each client to the repo
//! (docs/protocol.md#handshake).
//!
//! [`WebSocketServer`] listens on a TCP port of its own and also answers plain HTTP `GET`s (for
//! health probes). [`WebSocketAcceptor`] is the same server without a listener, for applications
//! that already run an HTTP server: they upgrade the request themselves and pass the raw socket
//! to [`WebSocketAcceptor::accept_upgraded`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tandem_core::{
    Connection, Connections, LocalPeer, Message, NetworkAdapter, NetworkError, PeerId,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use crate::http::{websocket_accept_key, UpgradeRequest};
use crate::socket::{connection, Side};
use tandem_core::network::handshake::{answer_join, Identity, ServerDecision};

/// The default largest frame a server accepts: 64 MiB. automerge-repo's `ws` server allows
/// 100 MiB; a whole large document in one sync message fits in 64 MiB, and a hostile client
/// cannot make us buffer more.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// What the application's upgrade hook decides about a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Let it join under any peer id.
    Anyone,
    /// Let it join only as this peer id (so nobody else can take that id over).
    As(PeerId),
    /// Refuse the upgrade with `401 Unauthorized` and this text.
    Refuse(String),
}

/// The close code of a socket whose credentials lapsed ([`Admission::expires_at`]): a client
/// should connect again with fresh ones.
pub const CREDENTIALS_EXPIRED: u16 = 4001;

/// What an application's upgrade hook admitted a socket to: who may join on it, what its
/// credentials allow, and until when.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    /// Who it may join as; `None`: anyone.
    pub identity: Option<Identity>,
    /// What its credentials allow once joined (the repo narrows its share policy to it).
    pub grant: tandem_core::Grant,
    /// When its credentials lapse: the socket is closed then, with close code
    /// [`CREDENTIALS_EXPIRED`].
    pub expires_at: Option<std::time::Instant>,
}

/// The application's say on who may connect, from the HTTP upgrade request (headers, query
/// token…).
#[async_trait]
pub trait Authenticate: Send + Sync + 'static {
    /// Decides about one upgrade request.
    async fn authenticate(&self, request: &UpgradeRequest) -> Authentication;
}

/// Server tunables.
#[derive(Clone)]
pub struct ServerConfig {
    /// Largest frame (and message) accepted; a bigger one closes that socket. Default
    /// [`DEFAULT_MAX_FRAME`].
    pub max_frame_size: usize,
    /// Ping interval; a socket that has not answered the previous ping is dropped. Default 5 s,
    /// as in JS.
    pub keepalive_interval: Duration,
    /// Time from TCP accept to a completed `join`, for all the stages together (TLS, the HTTP
    /// request, the upgrade hook, the `join`); slower sockets are closed. Default 10 s.
    pub handshake_timeout: Duration,
    /// Sockets allowed in the handshake at once; more wait for a slot (default 1024).
    pub max_pending_handshakes: usize,
    /// The upgrade hook; `None` lets anyone in.
    pub authenticate: Option<Arc<dyn Authenticate>>,
    /// TLS (`wss://`): see [`crate::tls::server_config_from_pem`]. `None` serves plain `ws://`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Told of every message a served socket reads or writes (for metrics).
    pub observer: Option<Arc<dyn SocketObserver>>,
}

/// What a server's sockets carry, message by message (its type name and encoded size).
pub trait SocketObserver: Send + Sync + 'static {
    /// A client sent a message.
    fn received(&self, kind: &'static str, bytes: usize);
    /// A message went to a client.
    fn sent(&self, kind: &'static str, bytes: usize);
    /// A client's socket was closed for what it sent.
    fn fault(&self, _fault: SocketFault) {}
}

/// Why a client's socket was closed ([`SocketObserver::fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketFault {
    /// A frame over the size limit.
    FrameTooLarge,
    /// Anything else against the protocol: no `join` in time or a refused one, a text frame,
    /// a frame that is not a message, a WebSocket protocol error.
    Protocol,
}

/// What a failed WebSocket read says about the client: nothing, when the connection merely
/// broke (a phone that went out of range, a TLS session cut short).
pub(crate) fn read_fault(error: &tungstenite::Error) -> Option<SocketFault> {
    match error {
        tungstenite::Error::Capacity(_) => Some(SocketFault::FrameTooLarge),
        tungstenite::Error::Io(_)
        | tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed => None,
        _ => Some(SocketFault::Protocol),
    }
}

pub(crate) fn report(observer: Option<&Arc<dyn SocketObserver>>, fault: Option<SocketFault>) {
    if let (Some(observer), Some(fault)) = (observer, fault) {
        observer.fault(fault);
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_size: DEFAULT_MAX_FRAME,
            keepalive_interval: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 1024,
            authenticate: None,
            tls: None,
            observer: None,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("max_frame_size", &self.max_frame_size)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_pending_handshakes", &self.max_pending_handshakes)
            .field("authenticate", &self.authenticate.is_some())
            .field("tls", &self.tls.is_some())
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// What each socket reads into at a time; a larger message grows its buffer while it is read.
const SOCKET_READ_BUFFER: usize = 8 * 1024;
/// How much a socket gathers before writing (each message is flushed on its own anyway).
const SOCKET_WRITE_BUFFER: usize = 8 * 1024;

impl ServerConfig {
    fn websocket(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_frame_size(Some(self.max_frame_size))
            .max_message_size(Some(self.max_frame_size))
            // tungstenite's defaults (128 KiB each) are allocated for every socket, read or
            // not: with thousands of idle clients they were most of the server's memory.
            .read_buffer_size(SOCKET_READ_BUFFER)
            .write_buffer_size(SOCKET_WRITE_BUFFER)
    }
}

/// A WebSocket server on its own TCP listener, as a [`NetworkAdapter`]. `GET` requests that are
/// not upgrades get `200 tandem is running`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tandem_net_ws::{ServerConfig, WebSocketServer};
/// let server = WebSocketServer::bind("127.0.0.1:3030", ServerConfig::default()).await?;
/// println!("listening on {}", server.local_addr()?);
/// let repo = tandem_repo::Repo::builder().network(server).start().await?;
/// # Ok(()) }
/// ```
pub struct WebSocketServer {
    listener: TcpListener,
    acceptor: WebSocketAcceptor,
    adapter: AcceptorAdapter,
}

impl std::fmt::Debug for WebSocketServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketServer")
            .field("local_addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl WebSocketServer {
    /// Binds the listener (use port 0 for any free port).
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: ServerConfig,
    ) -> Result<WebSocketServer, NetworkError> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::from_listener(listener, config))
    }

    /// Serves on a listener the application bound.
    pub fn from_listener(listener: TcpListener, config: ServerConfig) -> WebSocketServer {
        let (adapter, acceptor) = WebSocketAcceptor::new(config);
        WebSocketServer {
            listener,
            acceptor,
            adapter,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, NetworkError> {
        Ok(self.listener.local_addr()?)
    }
}

#[async_trait]
impl NetworkAdapter for WebSocketServer {
    async fn start(self: Box<Self>, local: LocalPeer) -> Result<Connections, NetworkError> {
        let WebSocketServer {
            listener,
            acceptor,
            adapter,
        } = *self;
        let connections = Box::new(adapter).start(local).await?;
        let slots = Arc::new(Semaphore::new(acceptor.inner.config.max_pending_handshakes));
        let stopped = acceptor.inner.connections.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stopped.closed() => return, // the repo is gone
                };
                let (stream, addr) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Waiting for a slot must not outlive the repo either.
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => slot,
                    _ = stopped.closed() => return,
                };
                let Ok(slot) = slot else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(error) = acceptor.accept_tcp(stream).await {
                        debug!(%addr, %error, "socket closed during the handshake");
                    }
                });
            }
        });
        Ok(connections)
    }
}

/// A request head larger than this is refused: nobody needs more headers to sync (hyper's
/// smallest buffer is 8 KiB).
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// A plain-text response.
fn plain(status: hyper::StatusCode, body: String) -> hyper::Response<String> {
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // One request per connection: the next one would be a new socket.
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

/// A server without a listener: hand it sockets that your own HTTP server upgraded.
///
/// [`WebSocketAcceptor::new`] returns the adapter to give the repo and the acceptor to keep in
/// the HTTP route. Sockets accepted before the repo starts wait for it.
#[derive(Clone)]
pub struct WebSocketAcceptor {
    inner: Arc<AcceptorInner>,
}

struct AcceptorInner {
    config: ServerConfig,
    local: watch::Receiver<Option<LocalPeer>>,
    connections: mpsc::Sender<Connection>,
    /// Turns `true` when the server goes away: every socket closes with code 1001.
    going_away: watch::Sender<bool>,
}

/// The [`NetworkAdapter`] half of a [`WebSocketAcceptor`].
pub struct AcceptorAdapter {
    local: watch::Sender<Option<LocalPeer>>,
    connections: mpsc::Receiver<Connection>,
}

impl std::fmt::Debug for AcceptorAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptorAdapter").finish_non_exhaustive()
    }
}

#[async_trait]
impl NetworkAdapter for AcceptorAdapter {
    async fn start(self: Box<Self>, local: LocalPeer) -> Result<Connections, NetworkError> {
        self.local.send_replace(Some(local));
        let AcceptorAdapter { local, connections } = *self;
        // The sender lives as long as the stream, so waiting acceptors see the local peer.
        Ok(Box::pin(futures::stream::unfold(
            (connections, local),
            |(mut rx, local)| async move { rx.recv().await.map(|c| (c, (rx, local))) },
        )))
    }
}

impl std::fmt::Debug for WebSocketAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketAcceptor")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl WebSocketAcceptor {
    /// An acceptor and the adapter that delivers its connections to a repo.
    pub fn new(config: ServerConfig) -> (AcceptorAdapter, WebSocketAcceptor) {
        let (local_tx, local_rx) = watch::channel(None);
        let (tx, rx) = mpsc::channel(64);
        (
            AcceptorAdapter {
                local: local_tx,
                connections: rx,
            },
            WebSocketAcceptor {
                inner: Arc::new(AcceptorInner {
                    config,
                    local: local_rx,
                    connections: tx,
                    going_away: watch::channel(false).0,
                }),
            },
        )
    }

    /// Closes every socket it accepted, now and from now on, with close code 1001 (going away):
    /// the server is shutting down.
    pub fn go_away(&self) {
        self.inner.going_away.send_replace(true);
    }

    /// The configuration (for the frame limit an HTTP framework should apply, say).
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Serves one raw TCP connection: TLS if configured, then a health `GET` or a WebSocket
    /// upgrade, then the `join`.
    pub async fn accept_tcp(&self, stream: TcpStream) -> Result<(), NetworkError> {
        stream.set_nodelay(true)?;
        // One deadline for every stage, so a slow client cannot stretch the handshake by being
        // slow at each stage in turn.
        let deadline = Instant::now() + self.inner.config.handshake_timeout;
        match &self.inner.config.tls {
            None => self.accept_stream(stream, deadline).await,
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                let stream = timeout_at(deadline, acceptor.accept(stream))
                    .await
                    .map_err(|_| NetworkError::Handshake("no TLS handshake in time".into()))?
                    .map_err(|e| NetworkError::Handshake(format!("TLS: {e}")))?;
                self.accept_stream(stream, deadline).await
            }
        }
    }

    /// HTTP/1 on hyper: one request, answered within the deadline. A plain request is
    /// answered and the connection closed; an upgrade the hook admits is answered `101`, and
    /// the socket then waits for its `join` (within the same deadline).
    async fn accept_stream<S>(&self, stream: S, deadline: Instant) -> Result<(), NetworkError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (upgrades, upgraded) = oneshot::channel();
        let upgrades = Arc::new(Mutex::new(Some(upgrades)));
        let acceptor = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let acceptor = acceptor.clone();
            let upgrades = upgrades.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    acceptor.answer(request, deadline, &upgrades).await,
                )
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(deadline.saturating_duration_since(Instant::now()))
            .max_buf_size(MAX_REQUEST_HEAD)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        match timeout_at(deadline, connection).await {
            Err(_) => return Err(NetworkError::Handshake("no request in time".into())),
            Ok(Err(error)) => return Err(NetworkError::Handshake(error.to_string())),
            Ok(Ok(())) => {}
        }
        // A plain request was answered, or an upgrade refused: nothing more.
        let Ok((upgrade, admission)) = upgraded.await else {
            return Ok(());
        };
        let io = match timeout_at(deadline, upgrade).await {
            Err(_) => return Err(NetworkError::Handshake("no upgrade in time".into())),
            Ok(Err(error)) => return Err(NetworkError::Handshake(error.to_string())),
            Ok(Ok(io)) => io,
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(io),
            Role::Server,
            Some(self.inner.config.websocket()),
        )
        .await;
        self.serve(ws, admission, deadline).await.map(|_| ())
    }

    /// Answers the one request of [`accept_stream`](Self::accept_stream); an admitted upgrade
    /// goes to `upgrades` with what it is admitted to.
    async fn answer(
        &self,
        mut request: hyper::Request<hyper::body::Incoming>,
        deadline: Instant,
        upgrades: &Mutex<Option<oneshot::Sender<(hyper::upgrade::OnUpgrade, Admission)>>>,
    ) -> hyper::Response<String> {
        let head = UpgradeRequest::from_http(&request);
        if !head.is_websocket_upgrade() {
            return if request.method() == hyper::Method::GET {
                plain(hyper::StatusCode::OK, "tandem is running\n".into())
            } else {
                plain(hyper::StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into())
            };
        }
        let decision = timeout_at(deadline, self.authenticate(&head))
            .await
            .unwrap_or_else(|_| Authentication::Refuse("authentication took too long".into()));
        let admission = match decision {
            Authentication::Refuse(why) => {
                debug!(%why, "upgrade refused");
                return plain(hyper::StatusCode::UNAUTHORIZED, format!("{why}\n"));
            }
            Authentication::As(peer) => Admission {
                identity: Some(Identity::Exactly(peer)),
                ..Admission::default()
            },
            Authentication::Anyone => Admission::default(),
        };
        let key = head.header("sec-websocket-key").unwrap_or_default();
        let accept = websocket_accept_key(key);
        let taken = upgrades
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(upgrades) = taken {
            let _ = upgrades.send((hyper::upgrade::on(&mut request), admission));
        }
        hyper::Response::builder()
            .status(hyper::StatusCode::SWITCHING_PROTOCOLS)
            .header(hyper::header::CONNECTION, "upgrade")
            .header(hyper::header::UPGRADE, "websocket")
            .header(hyper::header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(String::new())
            .unwrap_or_else(|_| plain(hyper::StatusCode::INTERNAL_SERVER_ERROR, String::new()))
    }

    /// Serves a socket an HTTP framework has already upgraded (the `101` is sent): waits for the
    /// `join` and hands the client to the repo, as far as `admission` admits it, and returns once
    /// the socket has closed. The `join` must arrive within the handshake timeout.
    pub async fn accept_upgraded<S>(&self, io: S, admission: Admission) -> Result<(), NetworkError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ws =
            WebSocketStream::from_raw_socket(io, Role::Server, Some(self.inner.config.websocket()))
                .await;
        let deadline = Instant::now() + self.inner.config.handshake_timeout;
        let mut finished = self.serve(ws, admission, deadline).await?;
        // What the caller holds for the socket (a connection slot) lasts as long as it does.
        let _ = finished.wait_for(|done| *done).await;
        Ok(())
    }

    async fn authenticate(&self, request: &UpgradeRequest) -> Authentication {
        match &self.inner.config.authenticate {
            Some(hook) => hook.authenticate(request).await,
            None => Authentication::Anyone,
        }
    }

    async fn serve<S>(
        &self,
        mut ws: WebSocketStream<S>,
        admission: Admission,
        deadline: Instant,
    ) -> Result<watch::Receiver<bool>, NetworkError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = &self.inner.config;
        let observer = config.observer.as_ref();
        let local = self.local().await?;
        let first = match timeout_at(deadline, first_message(&mut ws, observer)).await {
            Err(_) => {
                report(observer, Some(SocketFault::Protocol));
                let _ = ws.close(None).await;
                return Err(NetworkError::Handshake("no join in time".into()));
            }
            Ok(Err(error)) => {
                let _ = ws.close(None).await;
                return Err(error);
            }
            Ok(Ok(first)) => first,
        };
        match answer_join(&local, &first, admission.identity.as_ref()) {
            ServerDecision::Reject { reply, reason } => {
                warn!(%reason, "join refused");
                report(observer, Some(SocketFault::Protocol));
                if let Some(reply) = reply {
                    let _ = futures::SinkExt::send(&mut ws, Frame::binary(reply.encode())).await;
                }
                let _ = ws.close(None).await;
                Err(NetworkError::Handshake(reason))
            }
            ServerDecision::Accept { remote, reply } => {
                // `peer` goes out before anything the repo says (docs/protocol.md#handshake: a JS client drops replies
                // to a peer it has not registered).
                futures::SinkExt::send(&mut ws, Frame::binary(reply.encode()))
                    .await
                    .map_err(|e| NetworkError::Other(e.to_string()))?;
                info!(peer = %remote.peer_id, "client joined");
                let side = Side::Server {
                    keepalive: config.keepalive_interval,
                    expires_at: admission.expires_at,
                    going_away: self.inner.going_away.subscribe(),
                    observer: config.observer.clone(),
                };
                let (mut connection, finished) = connection(ws, remote, side);
                connection.grant = admission.grant;
                self.inner
                    .connections
                    .send(connection)
                    .await
                    .map_err(|_| NetworkError::Closed)?;
                Ok(finished)
            }
        }
    }

    async fn local(&self) -> Result<LocalPeer, NetworkError> {
        let mut local = self.inner.local.clone();
        let ready = local
            .wait_for(|l| l.is_some())
            .await
            .map_err(|_| NetworkError::Closed)?;
        ready.clone().ok_or(NetworkError::Closed)
    }
}

/// The first message on a server socket, which must be a decodable `join`.
async fn first_message<S>(
    ws: &mut WebSocketStream<S>,
    observer: Option<&Arc<dyn SocketObserver>>,
) -> Result<Message, NetworkError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        match ws.next().await {
            None => return Err(NetworkError::Closed),
            Some(Err(error)) => {
                report(observer, read_fault(&error));
                return Err(NetworkError::Handshake(error.to_string()));
            }
            Some(Ok(Frame::Binary(bytes))) => {
                return Message::decode(&bytes).map_err(|error| {
                    report(observer, Some(SocketFault::Protocol));
                    error.into()
                })
            }
            Some(Ok(Frame::Text(_))) => {
                report(observer, Some(SocketFault::Protocol));
                return Err(NetworkError::Handshake("text frame before join".into()));
            }
            Some(Ok(Frame::Close(_))) => return Err(NetworkError::Closed),
            Some(Ok(_)) => continue, // pings and pongs
        }
    }
}
