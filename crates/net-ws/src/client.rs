//! The client side: connect, `join`, wait for `peer`, hand the server to the repo; reconnect
//! with exponential backoff and jitter whenever the socket ends (docs/protocol.md#connections-after-the-handshake, minus JS's fixed 5 s
//! retry and its endless loop on a refused version).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use tandem_core::{
    Connection, ConnectionState, Connections, LocalPeer, Message, NetworkAdapter, NetworkError,
};
use tandem_net_client::{Attempt, Dial, Reconnecting, Retry};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Frame;
use tracing::{debug, warn};

use crate::server::DEFAULT_MAX_FRAME;
use crate::socket::{connection, Side};
use tandem_core::network::handshake::{join, read_answer, ClientOutcome};

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
    client: Reconnecting<Dialer>,
}

/// One attempt to reach the server at `url`.
struct Dialer {
    url: String,
    config: ClientConfig,
}

impl std::fmt::Debug for WebSocketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WebSocketClient")
            .field(&self.client)
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
        let retry = Retry {
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
            give_up_after: config.give_up_after,
            handshake_timeout: config.handshake_timeout,
        };
        Ok(WebSocketClient {
            client: Reconnecting::new(Dialer { url, config }, retry),
        })
    }

    /// The connection state, now and as it changes.
    pub fn states(&self) -> watch::Receiver<ConnectionState> {
        self.client.states()
    }
}

#[async_trait]
impl NetworkAdapter for WebSocketClient {
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
        self.url.clone()
    }

    async fn dial(
        &self,
        local: &LocalPeer,
    ) -> Result<(Connection, watch::Receiver<bool>), Attempt> {
        connect(&self.url, local, &self.config).await
    }
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
    fn only_websocket_urls_are_accepted() {
        assert!(WebSocketClient::new("ws://127.0.0.1:1", ClientConfig::default()).is_ok());
        assert!(WebSocketClient::new("wss://example.org/sync", ClientConfig::default()).is_ok());
        assert!(WebSocketClient::new("http://example.org", ClientConfig::default()).is_err());
        assert!(WebSocketClient::new("not a url", ClientConfig::default()).is_err());
    }
}
