//! # tandem-server
//!
//! A sync server that automerge-repo clients (JS or Rust) use as they would the JS
//! `automerge-repo-sync-server`: WebSocket on one port, documents kept in a directory in the
//! NodeFS layout (so it can take over a JS server's directory), served to whoever asks and
//! announced to nobody.
//!
//! The binary parses [`Options`] and calls [`run`]; tests and embedding programs call
//! [`Server::start`] and [`Server::shutdown`].

#![warn(missing_docs)]

mod admin;
mod auth;
mod cluster;
mod http;
mod metrics;
pub mod migrate;

pub use auth::AuthSetupError;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tandem_core::StorageAdapter;
use tandem_net_ws::{ServerConfig, WebSocketAcceptor, DEFAULT_MAX_FRAME};
use tandem_repo::{AskOnly, Repo, RepoError};
use tandem_storage_fs::FsStorage;
use tandem_storage_mem::MemoryStorage;
use tandem_storage_postgres::{NodeRegistry, PostgresStorage};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// The largest document the admin API takes in.
const ADMIN_MAX_BODY: usize = 256 << 20;

/// The command line: serve with [`Options`], or run a subcommand.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tandem-server",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// `migrate`; none serves.
    #[command(subcommand)]
    pub command: Option<Subcommand>,
    /// The server's options.
    #[command(flatten)]
    pub serve: Options,
}

/// A secret or token from the command line or the environment. An empty one is refused: an
/// empty `TANDEM_AUTH_JWT_SECRET=` would let in tokens anyone can sign, and an empty cluster
/// secret would let anyone link as a node.
fn secret(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(value.to_owned())
}

/// What `tandem-server` can do besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Subcommand {
    /// Copy every document from one store to another (a directory into PostgreSQL, or back),
    /// checking each document's heads; the server must not be running on the destination.
    Migrate(migrate::MigrateOptions),
}

/// The server's options; each can also come from the environment variable named in its help.
#[derive(Debug, Clone, Parser)]
#[command(name = "tandem-server", version, about)]
pub struct Options {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "TANDEM_PORT", default_value_t = 3030)]
    pub port: u16,
    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "TANDEM_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Directory for documents (NodeFS layout: a JS sync server's directory works as is).
    #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
    pub data_dir: PathBuf,
    /// Keep documents in memory only (nothing survives a restart).
    #[arg(long, env = "TANDEM_MEMORY", conflicts_with_all = ["data_dir", "postgres"])]
    pub memory: bool,
    /// Keep documents in this PostgreSQL database instead of a directory
    /// (`postgres://user:password@host:5432/database`); its tables are created or upgraded at
    /// start. Several servers on one database form a cluster (`--cluster-advertise`).
    #[arg(
        long,
        env = "TANDEM_POSTGRES_URL",
        hide_env_values = true,
        conflicts_with = "data_dir"
    )]
    pub postgres: Option<String>,
    /// Join the cluster of servers on the `--postgres` database, reachable by the other nodes
    /// at this URL (`ws://10.0.0.5:3030`): this node registers there, links to every other live
    /// node, and keeps the documents open on several nodes in sync among them. Port 0 in the
    /// URL stands for the port the server listens on (with `--port 0`).
    #[arg(long, env = "TANDEM_CLUSTER_ADVERTISE", requires_all = ["postgres", "cluster_secret"])]
    pub cluster_advertise: Option<String>,
    /// The secret every node of the cluster shares, to sign and check the links between nodes.
    #[arg(
        long,
        env = "TANDEM_CLUSTER_SECRET",
        hide_env_values = true,
        requires = "cluster_advertise",
        value_parser = secret
    )]
    pub cluster_secret: Option<String>,
    /// Largest WebSocket frame accepted, in bytes; a bigger one closes that socket.
    #[arg(long, env = "TANDEM_MAX_FRAME_SIZE", default_value_t = DEFAULT_MAX_FRAME)]
    pub max_frame_size: usize,
    /// Relay remote-heads gossip between clients (automerge-repo's `enableRemoteHeadsGossiping`).
    #[arg(long, env = "TANDEM_REMOTE_HEADS_GOSSIP")]
    pub remote_heads_gossip: bool,
    /// Seconds an unused document stays in memory before it is saved and unloaded.
    #[arg(long, env = "TANDEM_IDLE_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_seconds: u64,
    /// PEM certificate chain: serve `wss://` (with `--tls-key`).
    #[arg(long, env = "TANDEM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "TANDEM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require a JSON Web Token signed with this HS256 secret on every WebSocket (the `token`
    /// query parameter or `Authorization: Bearer`); its claims say which documents (`docs`),
    /// how far (`access`: "write" or "read"), as whom (`sub`) and until when (`exp`).
    #[arg(long, env = "TANDEM_AUTH_JWT_SECRET", hide_env_values = true, value_parser = secret)]
    pub auth_jwt_secret: Option<String>,
    /// Require a JSON Web Token signed with the private half of this PEM public key (RS256,
    /// ES256 or EdDSA), as `--auth-jwt-secret` does.
    #[arg(long, env = "TANDEM_AUTH_JWT_PUBLIC_KEY")]
    pub auth_jwt_public_key: Option<PathBuf>,
    /// Serve `GET /metrics` on this address (say `127.0.0.1:9090`) instead of the main port.
    #[arg(long, env = "TANDEM_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Log lines as text, or as one JSON object per line (for log collectors).
    #[arg(long, env = "TANDEM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// WebSocket clients served at once; an upgrade beyond is answered 503.
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Largest change taken from a client, in bytes (encoded, as automerge stores it). A larger
    /// one is refused: not applied, stored, relayed or acknowledged; that client then only
    /// reads the document until it reconnects, and one that keeps sending it is disconnected.
    #[arg(long, env = "TANDEM_MAX_CHANGE_BYTES", default_value_t = 32 << 20)]
    pub max_change_bytes: usize,
    /// Largest a document may grow to through clients' changes, in bytes (what storage held
    /// when it was loaded plus every change taken since); changes beyond are refused as
    /// `--max-change-bytes` refuses them.
    #[arg(long, env = "TANDEM_MAX_DOCUMENT_BYTES", default_value_t = 1 << 30)]
    pub max_document_bytes: u64,
    /// Bytes that may wait to be sent to one client; past them it counts as no longer reading
    /// and is disconnected (what waited is sent again when it reconnects). One message larger
    /// than this still goes on its own.
    #[arg(long, env = "TANDEM_MAX_OUTBOUND_BYTES", default_value_t = 64 << 20)]
    pub max_outbound_bytes: usize,
    /// Ephemeral messages (presence, cursors) each client may send per second, sustained;
    /// beyond, they are dropped, and a client that keeps flooding is disconnected.
    #[arg(long, env = "TANDEM_MAX_EPHEMERAL_PER_SECOND", default_value_t = 200)]
    pub max_ephemeral_per_second: u32,
    /// Ephemeral messages each client may send in a burst, above the sustained rate.
    #[arg(long, env = "TANDEM_MAX_EPHEMERAL_BURST", default_value_t = 400)]
    pub max_ephemeral_burst: u32,
    /// Serve the admin API (`/v1/docs`: read, export, import, delete for good) to requests
    /// carrying `Authorization: Bearer` with this token. Off when not given.
    #[arg(long, env = "TANDEM_ADMIN_TOKEN", hide_env_values = true, value_parser = secret)]
    pub admin_token: Option<String>,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) may take to save everything and close every socket
    /// (with code 1001) before the process ends anyway.
    #[arg(long, env = "TANDEM_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
}

impl Options {
    /// Where documents are kept, for logs: "memory", "postgres" or the directory.
    pub fn storage_name(&self) -> String {
        match (self.memory, &self.postgres) {
            (true, _) => "memory".to_owned(),
            (false, Some(_)) => "postgres".to_owned(),
            (false, None) => self.data_dir.display().to_string(),
        }
    }
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listener could not bind.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why.
        source: tandem_core::NetworkError,
    },
    /// The PostgreSQL database could not be used.
    #[error("cannot use the PostgreSQL database: {0}")]
    Postgres(#[from] tandem_storage_postgres::PostgresError),
    /// The data directory could not be opened.
    #[error("cannot use data directory {path}: {source}")]
    Storage {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: tandem_core::StorageError,
    },
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] tandem_net_ws::tls::TlsError),
    /// The JWT settings could not be used.
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    /// The repo could not start.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    repo: Repo,
    /// Closes the sockets with 1001 at shutdown.
    acceptor: WebSocketAcceptor,
    /// Tells the HTTP front the server is going: `/readyz` 503, no new sockets.
    shutting_down: Arc<AtomicBool>,
    shutdown_timeout: Duration,
    /// The HTTP front's accept loop.
    http: tokio::task::JoinHandle<()>,
    /// The task that follows documents into and out of memory for the metrics.
    following: tokio::task::JoinHandle<()>,
    /// `--metrics-listen`: where, and its accept loop.
    metrics_port: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    /// This node's heartbeat and links, in a cluster.
    cluster: Option<cluster::Cluster>,
    local_addr: SocketAddr,
    url: String,
}

impl Server {
    /// Opens storage, binds the port and starts serving.
    pub async fn start(options: &Options) -> Result<Server, ServerError> {
        // Every client is a socket: take all the open files the system allows us.
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => info!(limit, "open files limit"),
            Err(error) => warn!(%error, "could not raise the open files limit"),
        }
        let address = format!("{}:{}", options.host, options.port);
        let tls = match (&options.tls_cert, &options.tls_key) {
            (Some(cert), Some(key)) => Some(tandem_net_ws::tls::server_config_from_pem(cert, key)?),
            _ => None,
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
        let metrics = metrics::Metrics::new(slots.clone(), options.max_connections);
        let config = ServerConfig {
            max_frame_size: options.max_frame_size,
            tls,
            observer: Some(metrics.clone()),
            ..ServerConfig::default()
        };
        let bind_error = |source: std::io::Error| ServerError::Bind {
            address: address.clone(),
            source: source.into(),
        };
        let listener = listen(address.as_str()).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let auth = auth::JwtAuth::new(
            options.auth_jwt_secret.as_deref(),
            options.auth_jwt_public_key.as_deref(),
        )?;
        let (sockets, acceptor) = WebSocketAcceptor::new(config);
        let mut builder = Repo::builder()
            .shared_observer(metrics.clone())
            // A public sync server announces nothing and serves whoever asks.
            .share_policy(AskOnly)
            .remote_heads_gossip(options.remote_heads_gossip)
            .idle_timeout(Duration::from_secs(options.idle_seconds))
            // A document deleted here stays deleted, whoever still holds a copy.
            .tombstones(true)
            .max_change_bytes(options.max_change_bytes)
            .max_document_bytes(options.max_document_bytes)
            .max_outbound_bytes(options.max_outbound_bytes)
            .ephemeral_rate(
                options.max_ephemeral_per_second,
                options.max_ephemeral_burst,
            )
            .network(sockets);
        let mut registry = None;
        let storage: Arc<dyn StorageAdapter> = if options.memory {
            // In memory, as a JS repo with in-memory storage: it still has a storage id, which
            // clients use to tell what the server holds.
            Arc::new(MemoryStorage::new())
        } else {
            // A client told "synced" must never lose that change to a crash.
            builder = builder.durable_acknowledgement(true);
            match &options.postgres {
                Some(url) => {
                    let storage = PostgresStorage::connect(url).await?;
                    registry = Some(storage.clone());
                    Arc::new(storage)
                }
                None => Arc::new(FsStorage::open(&options.data_dir).map_err(|source| {
                    ServerError::Storage {
                        path: options.data_dir.clone(),
                        source,
                    }
                })?),
            }
        };
        builder = builder.shared_storage(Arc::new(metrics::MeteredStorage {
            inner: storage.clone(),
            metrics: metrics.clone(),
        }));
        let repo = builder.start().await?;
        let following = metrics.follow(&repo);
        let cluster_key = options
            .cluster_secret
            .as_deref()
            .map(|secret| Arc::new(cluster::ClusterKey::new(secret, repo.peer_id().clone())));
        let cluster = match (&options.cluster_advertise, &cluster_key, registry) {
            (Some(advertise), Some(key), Some(storage)) => {
                let registry = NodeRegistry::new(
                    &storage,
                    repo.peer_id().to_string(),
                    cluster::with_port(advertise, local_addr.port()),
                    cluster::ALIVE_WITHIN,
                );
                Some(cluster::Cluster::start(
                    repo.clone(),
                    registry,
                    key.clone(),
                    metrics.clone(),
                ))
            }
            _ => None,
        };
        let metrics_port = match &options.metrics_listen {
            Some(address) => {
                let metrics_error = |source: std::io::Error| ServerError::Bind {
                    address: address.clone(),
                    source: source.into(),
                };
                let listener = listen(address.as_str()).await.map_err(metrics_error)?;
                let local = listener.local_addr().map_err(metrics_error)?;
                Some((local, http::serve_metrics(listener, metrics.clone())))
            }
            None => None,
        };
        let shutting_down = Arc::new(AtomicBool::new(false));
        let http = http::serve(
            listener,
            http::Front {
                acceptor: acceptor.clone(),
                metrics: metrics.clone(),
                metrics_here: options.metrics_listen.is_none(),
                connections: slots,
                shutting_down: shutting_down.clone(),
                auth: auth.map(Arc::new),
                cluster: cluster_key,
                storage: (!options.memory).then_some(storage),
                admin: options.admin_token.clone().map(|token| admin::Admin {
                    token,
                    repo: repo.clone(),
                    max_body: ADMIN_MAX_BODY,
                }),
            },
        );
        info!(
            address = %local_addr,
            storage = %options.storage_name(),
            peer_id = %repo.peer_id(),
            "tandem-server listening"
        );
        let scheme = if options.tls_cert.is_some() {
            "wss"
        } else {
            "ws"
        };
        Ok(Server {
            repo,
            acceptor,
            shutting_down,
            shutdown_timeout: Duration::from_secs(options.shutdown_timeout),
            http,
            following,
            metrics_port,
            cluster,
            url: format!("{scheme}://{local_addr}"),
            local_addr,
        })
    }

    /// The URL clients connect to (`ws://…` or `wss://…`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The repo it serves.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// Shuts down: `/readyz` answers 503 at once and no new socket is taken, every pending save
    /// is made, then every socket closes with code 1001 (going away); all within the shutdown
    /// timeout, past which it stops anyway.
    pub async fn shutdown(mut self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        // The other nodes drop this one now, not after its silence (unless the database is
        // slow to answer: they will after the silence).
        if let Some(cluster) = self.cluster.take() {
            let leaving = tokio::time::timeout(cluster::ALIVE_WITHIN, cluster.leave());
            if leaving.await.is_err() {
                warn!("could not leave the cluster's registry in time; the others will notice");
            }
        }
        let orderly = async {
            if let Err(error) = self.repo.flush().await {
                warn!(%error, "a save failed during shutdown");
            }
            self.acceptor.go_away();
            self.repo.shutdown().await;
        };
        if tokio::time::timeout(self.shutdown_timeout, orderly)
            .await
            .is_err()
        {
            warn!(timeout = ?self.shutdown_timeout, "shutdown took longer than allowed; stopping anyway");
            self.acceptor.go_away();
        }
        self.http.abort();
        self.following.abort();
        if let Some((_, serving)) = &self.metrics_port {
            serving.abort();
        }
    }

    /// Where `GET /metrics` is served when `--metrics-listen` is given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_port.as_ref().map(|(addr, _)| *addr)
    }
}

/// How many connections may wait to be accepted: thousands of clients reconnecting at once
/// (after a restart, or a load balancer's failover) overflowed tokio's default of 1,024, and
/// each connection dropped so waited a second for its SYN to be sent again.
const LISTEN_BACKLOG: u32 = 8192;

/// A listener on `address` (`host:port`) with [`LISTEN_BACKLOG`] (the kernel caps it at
/// `net.core.somaxconn`).
async fn listen(address: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for candidate in tokio::net::lookup_host(address).await? {
        let socket = if candidate.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(candidate)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{address} names no address"))))
}

/// Runs the server until `stop` resolves, then shuts it down cleanly. Prints the WebSocket URL
/// on stdout once it listens (scripts and tests read it to learn a port chosen with `--port 0`).
pub async fn run(
    options: Options,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let server = Server::start(&options).await?;
    println!("listening on {}", server.url());
    stop.await;
    info!("shutting down: saving documents and closing sockets");
    server.shutdown().await;
    info!("stopped");
    Ok(())
}

/// Resolves on ctrl-c, or on Unix SIGINT, SIGTERM or SIGHUP: the signals [`run`] should stop
/// on. SIGHUP stops in order too (there is nothing to reload), so that a server whose terminal
/// closes saves everything and leaves its cluster instead of dying at once.
///
/// The handlers are installed when this is called, not when the future is first polled: call
/// it before the server starts, so that a signal sent as soon as the server says it listens is
/// not met by the default action (which ends the process at once). Needs a tokio runtime.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), tandem_server::ServerError> {
/// use clap::Parser;
/// use tandem_server::{run, stop_signal, Options};
///
/// let options = Options::parse_from(["tandem-server", "--port", "0", "--memory"]);
/// // The argument is made before the server starts: signals are handled from then on.
/// run(options, stop_signal()).await
/// # }
/// ```
pub fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ]
        .map(signal);
        async move {
            match handlers {
                [Ok(mut interrupt), Ok(mut term), Ok(mut hangup)] => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = term.recv() => {}
                        _ = hangup.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
