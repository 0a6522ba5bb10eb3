//! # tandem-net-ws
//!
//! WebSocket network adapters that JS automerge-repo peers accept as their own
//! (docs/protocol.md#websocket-transport): one binary frame per CBOR message, the `join` / `peer` /
//! `error` handshake, sockets bound to the peer that joined on them.
//!
//! - [`WebSocketServer`]: listens on a TCP port, answers health `GET`s on the same port, pings
//!   every few seconds and drops sockets that stop answering, closes a socket that sends an
//!   oversized or undecodable frame (and only that socket), times out slow handshakes, and lets
//!   the application authenticate the upgrade request ([`Authenticate`]).
//! - [`WebSocketAcceptor`]: the same server for sockets an existing HTTP server has upgraded.
//! - [`WebSocketClient`]: connects, joins, reconnects with exponential backoff and jitter, and
//!   reports its [`ConnectionState`]. A server that refuses our protocol version is not retried.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tandem_net_ws::{ClientConfig, ServerConfig, WebSocketClient, WebSocketServer};
//! use tandem_repo::Repo;
//!
//! let server = WebSocketServer::bind("127.0.0.1:0", ServerConfig::default()).await?;
//! let url = format!("ws://{}", server.local_addr()?);
//! let hub = Repo::builder().network(server).start().await?;
//! let client = Repo::builder()
//!     .network(WebSocketClient::new(url, ClientConfig::default())?)
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod http;
mod server;
mod socket;
pub mod tls;

pub use client::{ClientConfig, ClientError, WebSocketClient};
pub use http::{websocket_accept_key, websocket_upgrade_key, UpgradeRequest};
/// The rustls version the TLS settings are built with.
pub use rustls;
pub use server::{
    AcceptorAdapter, Admission, Authenticate, Authentication, ServerConfig, SocketFault,
    SocketObserver, WebSocketAcceptor, WebSocketServer, CREDENTIALS_EXPIRED, DEFAULT_MAX_FRAME,
};
pub use tandem_core::network::handshake::Identity;
pub use tandem_core::ConnectionState;
