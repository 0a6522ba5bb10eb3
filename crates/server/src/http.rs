//! The server's HTTP front, on axum and hyper: a WebSocket upgrade on any path (JS clients
//! connect to whatever URL they are given) is handed to the repo's acceptor; `GET /healthz`
//! answers while the process serves, `GET /readyz` only while storage answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tandem_core::{StorageAdapter, StorageKey};
use tandem_net_ws::{websocket_accept_key, websocket_upgrade_key, Admission, WebSocketAcceptor};

use crate::admin::Admin;
use crate::auth::{token, JwtAuth};
use crate::cluster::LinkCheck;
use crate::metrics::{Metrics, Rejection};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// How long to wait before accepting again after `accept` failed (out of file descriptors,
/// say), rather than spin on the failure.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// How long `/readyz` waits for storage before it calls it down.
const READY_PATIENCE: Duration = Duration::from_secs(2);

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Front {
    pub(crate) acceptor: WebSocketAcceptor,
    /// What `/metrics` exports.
    pub(crate) metrics: Arc<Metrics>,
    /// Whether `/metrics` is served on this port (not when `--metrics-listen` gives its own).
    pub(crate) metrics_here: bool,
    /// One permit per WebSocket client served (`--max-connections`).
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
    /// With JWT access control: every upgrade needs a valid token.
    pub(crate) auth: Option<Arc<JwtAuth>>,
    /// In a cluster: the key other nodes' link tokens are signed with.
    pub(crate) cluster: Option<Arc<crate::cluster::ClusterKey>>,
    /// `None` when documents live in memory: always ready.
    pub(crate) storage: Option<Arc<dyn StorageAdapter>>,
    /// Set when the server starts shutting down: not ready, and no new sockets.
    pub(crate) shutting_down: Arc<AtomicBool>,
    /// The admin API, when `--admin-token` is set.
    pub(crate) admin: Option<Admin>,
}

/// Serves `listener` until the returned task is aborted: each connection (through TLS when
/// configured) gets hyper's HTTP/1 with upgrades, its request head within the handshake
/// timeout.
pub(crate) fn serve(listener: TcpListener, front: Front) -> JoinHandle<()> {
    let app = Router::new().fallback(any).with_state(front.clone());
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: the listener stays; try again shortly.
                    debug!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let app = app.clone();
            let config = front.acceptor.config().clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let served = match &config.tls {
                    None => connection(TokioIo::new(stream), app, config.handshake_timeout).await,
                    Some(tls) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                        match tokio::time::timeout(
                            config.handshake_timeout,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(stream)) => {
                                connection(TokioIo::new(stream), app, config.handshake_timeout)
                                    .await
                            }
                            Ok(Err(error)) => Err(format!("TLS: {error}")),
                            Err(_) => Err("no TLS handshake in time".to_owned()),
                        }
                    }
                };
                if let Err(error) = served {
                    debug!(%remote, %error, "HTTP connection ended");
                }
            });
        }
    })
}

async fn connection<I>(io: TokioIo<I>, app: Router, head_timeout: Duration) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(io, TowerToHyperService::new(app))
        .with_upgrades()
        .await
        .map_err(|error| error.to_string())
}

/// The metrics in the text format.
fn exposition(metrics: &Metrics) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// Serves `GET /metrics` alone on `listener` (`--metrics-listen`), in plain HTTP.
pub(crate) fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) -> JoinHandle<()> {
    let app = Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(metrics): State<Arc<Metrics>>| async move {
                exposition(&metrics)
            }),
        )
        .with_state(metrics);
    tokio::spawn(async move {
        loop {
            let Ok((stream, remote)) = listener.accept().await else {
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            };
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(error) = connection(TokioIo::new(stream), app, READY_PATIENCE).await {
                    debug!(%remote, %error, "metrics connection ended");
                }
            });
        }
    })
}

/// Every request: an upgrade on any path, or one of the few GETs.
async fn any(State(front): State<Front>, mut request: Request) -> Response {
    let headers = request.headers();
    if let Some(key) = websocket_upgrade_key(|name| headers.get(name)?.to_str().ok()) {
        if front.shutting_down.load(Ordering::Relaxed) {
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
        }
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        // Another node of the cluster, with a link token: no client token needed.
        let bearer = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim);
        let link = match (&front.cluster, bearer) {
            (Some(key), Some(token)) => key.check(token),
            _ => LinkCheck::NotALink,
        };
        let node = match link {
            LinkCheck::Node(admission) => Some(admission),
            LinkCheck::NotALink => None,
            LinkCheck::Refused(why) => {
                warn!(%why, "cluster link refused");
                front.metrics.rejected(Rejection::Auth);
                return (StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response();
            }
        };
        let admission = match (&front.auth, node) {
            (_, Some(node)) => node,
            (None, None) => Admission::default(),
            (Some(auth), None) => {
                let checked = match token(request.uri().query(), authorization) {
                    None => {
                        Err("a token is required (?token= or Authorization: Bearer)".to_owned())
                    }
                    Some(token) => auth.admit(token),
                };
                match checked {
                    Ok(admission) => admission,
                    Err(why) => {
                        debug!(%why, "upgrade refused");
                        front.metrics.rejected(Rejection::Auth);
                        return (StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response();
                    }
                }
            }
        };
        // Links between nodes are not clients: a node full of clients still takes them.
        let slot = if admission.grant.cluster_node {
            None
        } else {
            let Ok(slot) = front.connections.clone().try_acquire_owned() else {
                debug!("connection limit reached; upgrade refused");
                front.metrics.rejected(Rejection::Limit);
                return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
            };
            Some(slot)
        };
        let upgrade = hyper::upgrade::on(&mut request);
        let acceptor = front.acceptor.clone();
        tokio::spawn(async move {
            // Held for as long as the socket is served: the slots taken are the connections.
            let _slot = slot;
            match upgrade.await {
                Ok(upgraded) => {
                    if let Err(error) = acceptor
                        .accept_upgraded(TokioIo::new(upgraded), admission)
                        .await
                    {
                        debug!(%error, "socket closed during the handshake");
                    }
                }
                Err(error) => debug!(%error, "upgrade failed"),
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, websocket_accept_key(&key))
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    if let Some(admin) = &front.admin {
        if request.uri().path().starts_with("/v1/") {
            return crate::admin::handle(admin, request).await;
        }
    }
    if request.method() != Method::GET {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET, or a WebSocket upgrade\n",
        )
            .into_response();
    }
    match request.uri().path() {
        "/" => "tandem is running\n".into_response(),
        "/healthz" => "ok\n".into_response(),
        "/metrics" if front.metrics_here => exposition(&front.metrics),
        "/readyz" if front.shutting_down.load(Ordering::Relaxed) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response(),
        "/readyz" => match ready(front.storage.as_deref(), &front.metrics).await {
            Ok(()) => "ready\n".into_response(),
            Err(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            )
                .into_response(),
        },
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// The key `/readyz` writes and reads back: outside every document's keys, so no repo (JS's
/// included) ever reads it as one.
const READY_PROBE: &str = "tandem-readiness-probe";

/// Whether storage takes a durable write and reads it back in time (a full disk, a read-only
/// or vanished directory, a hung mount all fail it).
async fn ready(storage: Option<&dyn StorageAdapter>, metrics: &Metrics) -> Result<(), String> {
    let Some(storage) = storage else {
        return Ok(());
    };
    // A probe this small may fit where the documents' chunks do not.
    if let Some(outage) = metrics.storage_outage() {
        return Err(outage);
    }
    let probe = StorageKey::new([READY_PROBE]);
    let check = async {
        storage.save(&probe, b"ok".to_vec()).await?;
        storage.load(&probe).await
    };
    match tokio::time::timeout(READY_PATIENCE, check).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err("storage lost a write it acknowledged".to_owned()),
        Ok(Err(error)) => Err(format!("storage fails: {error}")),
        Err(_) => Err(format!("storage did not answer within {READY_PATIENCE:?}")),
    }
}
