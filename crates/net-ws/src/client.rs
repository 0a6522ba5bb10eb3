//! The client side: connect, `join`, wait for `peer`, hand the server to the repo; reconnect
//! with exponential backoff and jitter whenever the socket ends (docs/protocol.md#connections-after-the-handshake, minus JS's fixed 5 s
//! retry and its endless loop on a refused version).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use tandem_core::{
    Connection, ConnectionState, Connections, LocalPeer, Message, NetworkAdapter, NetworkError,
};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Frame;
use tracing::{debug, error, info, warn};

use crate::server::DEFAULT_MAX_FRAME;
use crate::socket::{connection, Side};
use tandem_core::network::handshake::{join, read_answer, reconnect_delay, ClientOutcome};

/// Client tunables.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Wait before the first retry (default 250 ms); each failed attempt doubles it.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (default 30 s). Each wait is jittered down by up to half,
    /// so that clients of a restarted server do not all come back at once.
    pub max_backoff: Duration,
    /// Stop after this many failed attempts in a row; `None` (the default) never gives up.
    pub give_up_after: Option<u32>,
    /// Time from starting to connect to the server's `peer` (default 10 s).
    pub handshake_timeout: Duration,
    /// Ping the server this often, and reconnect when nothing at all arrived from it since the
    /// previous ping (default 15 s, so a dead server is noticed within 30 s even when TCP is not
    /// told). `None` relies on the server's own pings and TCP.
    pub keepalive_interval: Option<Duration>,
    /// Largest frame accepted from the server (default 64 MiB).
    pub max_frame_size: usize,
    /// TLS settings for `wss://` (see [`crate::tls::client_config`]); `None` trusts the web's
    /// roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Sent as the upgrade request's `Authorization` header (say `Bearer <token>`), for servers
    /// that want credentials there rather than in the URL. `None` (the default) sends none.
    pub authorization: Option<String>,
    /// What the repo lets the server do on this connection: by default, whatever the share
    /// policy allows ([`Grant::cluster_node`](tandem_core::Grant::cluster_node) for a link to
    /// another node of a cluster).
    pub grant: tandem_core::Grant,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            give_up_after: None,
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Some(Duration::from_secs(15)),
            max_frame_size: DEFAULT_MAX_FRAME,
            tls: None,
            authorization: None,
            grant: tandem_core::Grant::default(),
        }
    }
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not a `ws://` or `wss://` URL.
    #[error("not a WebSocket URL: {0}")]
    InvalidUrl(String),
}

/// A WebSocket client to one server, as a [`NetworkAdapter`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tandem_net_ws::{ClientConfig, WebSocketClient};
/// let client = WebSocketClient::new("ws://127.0.0.1:3030", ClientConfig::default())?;
/// let mut states = client.states();
/// let repo = tandem_repo::Repo::builder().network(client).start().await?;
/// states.wait_for(|s| *s == tandem_net_ws::ConnectionState::Online).await?;
/// # Ok(()) }
/// ```
pub struct WebSocketClient {
    url: String,
    config: ClientConfig,
    state: watch::Sender<ConnectionState>,
    /// Turns `true` once the first attempt has ended (the connection, if any, handed over).
    first_attempt: watch::Sender<bool>,
}

impl std::fmt::Debug for WebSocketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketClient")
            .field("url", &self.url)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl WebSocketClient {
    /// A client for `url` (`ws://host:port/path` or `wss://…`). Nothing connects until the repo
    /// starts the adapter.
    pub fn new(url: impl Into<String>, config: ClientConfig) -> Result<Self, ClientError> {
        let url = url.into();
        let scheme_ok = url.starts_with("ws://") || url.starts_with("wss://");
        if !scheme_ok || url.as_str().into_client_request().is_err() {
            return Err(ClientError::InvalidUrl(url));
        }
        Ok(WebSocketClient {
            url,
            config,
            state: watch::channel(ConnectionState::Offline).0,
            first_attempt: watch::channel(false).0,
        })
    }

    /// The connection state, now and as it changes.
    pub fn states(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }
}

#[async_trait]
impl NetworkAdapter for WebSocketClient {
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

async fn run(client: WebSocketClient, local: LocalPeer, repo: mpsc::Sender<Connection>) {
    let WebSocketClient {
        url,
        config,
        state,
        first_attempt,
    } = client;
    let mut failures: u32 = 0;
    loop {
        state.send_replace(ConnectionState::Connecting);
        let attempt =
            tokio::time::timeout(config.handshake_timeout, connect(&url, &local, &config));
        match attempt.await {
            Ok(Ok((connection, mut finished))) => {
                failures = 0;
                info!(%url, server = %connection.remote.peer_id, "connected");
                if repo.send(connection).await.is_err() {
                    return; // the repo has stopped
                }
                state.send_replace(ConnectionState::Online);
                first_attempt.send_replace(true);
                tokio::select! {
                    _ = async { let _ = finished.wait_for(|done| *done).await; } => {}
                    _ = repo.closed() => return,
                }
                info!(%url, "disconnected");
            }
            Ok(Err(Attempt::Refused(why))) => {
                error!(%url, %why, "the server refused us; not retrying");
                state.send_replace(ConnectionState::Stopped(why));
                return;
            }
            Ok(Err(Attempt::Failed(why))) => {
                failures += 1;
                debug!(%url, %why, failures, "connection attempt failed");
            }
            Err(_) => {
                failures += 1;
                debug!(%url, failures, "connection attempt timed out");
            }
        }
        first_attempt.send_replace(true);
        if config.give_up_after.is_some_and(|limit| failures >= limit) {
            warn!(%url, failures, "giving up");
            state.send_replace(ConnectionState::Stopped(format!(
                "gave up after {failures} failed attempts"
            )));
            return;
        }
        state.send_replace(ConnectionState::Offline);
        let wait = backoff(&config, failures);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = repo.closed() => return,
        }
    }
}

/// The wait before the next attempt. After a connection that worked, the first retry is quick.
fn backoff(config: &ClientConfig, failures: u32) -> Duration {
    let jitter = rand::rng().random_range(0.5..=1.0);
    reconnect_delay(config.initial_backoff, config.max_backoff, failures, jitter)
}

async fn connect(
    url: &str,
    local: &LocalPeer,
    config: &ClientConfig,
) -> Result<(Connection, watch::Receiver<bool>), Attempt> {
    let ws_config = WebSocketConfig::default()
        .max_frame_size(Some(config.max_frame_size))
        .max_message_size(Some(config.max_frame_size));
    let connector = config.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    let mut request = url
        .into_client_request()
        .map_err(|e| Attempt::Refused(e.to_string()))?;
    if let Some(authorization) = &config.authorization {
        let value = authorization.parse().map_err(|_| {
            Attempt::Refused("the authorization is not a valid header value".into())
        })?;
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::header::AUTHORIZATION,
            value,
        );
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config), true, connector)
            .await
            .map_err(|e| Attempt::Failed(e.to_string()))?;
    ws.send(Frame::binary(join(local).encode()))
        .await
        .map_err(|e| Attempt::Failed(e.to_string()))?;
    loop {
        let frame = ws
            .next()
            .await
            .ok_or_else(|| Attempt::Failed("closed before `peer`".into()))?
            .map_err(|e| Attempt::Failed(e.to_string()))?;
        let Frame::Binary(bytes) = frame else {
            continue;
        };
        let message = match Message::decode(&bytes) {
            Ok(message) => message,
            Err(error) => {
                warn!(%url, %error, "undecodable frame before `peer`; ignored");
                continue;
            }
        };
        match read_answer(&message) {
            ClientOutcome::Accepted(remote) => {
                let side = Side::Client {
                    keepalive: config.keepalive_interval,
                };
                let (mut connection, finished) = connection(ws, remote, side);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        let config = ClientConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..ClientConfig::default()
        };
        for (failures, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let wait = backoff(&config, failures).as_millis();
            assert!(
                (full / 2..=full).contains(&wait),
                "after {failures} failures waited {wait} ms, expected {}..={full}",
                full / 2
            );
        }
    }

    #[test]
    fn only_websocket_urls_are_accepted() {
        assert!(WebSocketClient::new("ws://127.0.0.1:1", ClientConfig::default()).is_ok());
        assert!(WebSocketClient::new("wss://example.org/sync", ClientConfig::default()).is_ok());
        assert!(WebSocketClient::new("http://example.org", ClientConfig::default()).is_err());
        assert!(WebSocketClient::new("not a url", ClientConfig::default()).is_err());
    }
}
