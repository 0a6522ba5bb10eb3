//! # tandem-net-tcp
//!
//! A network adapter over plain TCP or a Unix socket, for links between services and between a
//! desktop app and a local daemon, where a WebSocket's HTTP upgrade and masking buy nothing.
//! The messages are automerge-repo's, with the same `join` / `peer` handshake as over WebSocket
//! ([`tandem_core::network::handshake`]); each is framed by its length, four bytes big-endian, as
//! samod's TCP transport frames them, so tandem and samod peers connect to each other either way.
//!
//! - [`TcpServer`]: listens on a TCP port ([`TcpServer::bind`]) or a Unix socket
//!   ([`TcpServer::bind_unix`]); closes a connection that sends an oversized or undecodable
//!   frame (and only that one), or no `join` in time.
//! - [`TcpClient`]: connects, joins, reconnects with exponential backoff and jitter, and
//!   reports its [`ConnectionState`](tandem_core::ConnectionState).
//!
//! The transport authenticates nobody and encrypts nothing: bind it to loopback, a private
//! network or a Unix socket whose file permissions say who may connect.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tandem_net_tcp::{ClientConfig, ServerConfig, TcpClient, TcpServer};
//! use tandem_repo::Repo;
//!
//! let server = TcpServer::bind_unix("/tmp/tandem.sock", ServerConfig::default())?;
//! let endpoint = server.local_endpoint()?;
//! let daemon = Repo::builder().network(server).start().await?;
//! let app = Repo::builder()
//!     .network(TcpClient::new(endpoint, ClientConfig::default()))
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod endpoint;
mod framing;
mod server;
mod stream;

pub use client::{ClientConfig, TcpClient};
pub use endpoint::{Endpoint, InvalidEndpoint};
pub use framing::DEFAULT_MAX_FRAME;
pub use server::{ServerConfig, TcpServer};
