//! Mounting the sync server as one route of an existing axum (hyper) application.
//!
//! The application keeps its own routes; `/sync` upgrades to a WebSocket and hands the raw
//! socket to a [`WebSocketAcceptor`], whose other half is the repo's network adapter.
//!
//! ```text
//! cargo run -p tandem-net-ws --example axum_route -- 127.0.0.1:3030
//! ```
//!
//! A JS client then connects with
//! `new WebSocketClientAdapter("ws://127.0.0.1:3030/sync")`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use tandem_net_ws::{
    websocket_accept_key, websocket_upgrade_key, Admission, ServerConfig, WebSocketAcceptor,
};
use tandem_repo::{AskOnly, Repo};
use tracing::debug;

/// The application's router with the sync route added.
pub fn router(acceptor: WebSocketAcceptor) -> Router {
    Router::new()
        .route("/", get(|| async { "my application\n" }))
        .route("/sync", get(sync))
        .with_state(acceptor)
}

/// Answers the upgrade with `101` and serves the socket once hyper lets go of it.
async fn sync(State(acceptor): State<WebSocketAcceptor>, mut request: Request) -> Response {
    let headers = request.headers();
    let Some(key) = websocket_upgrade_key(|name| headers.get(name)?.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n").into_response();
    };
    // This is where an application authenticates the request (a cookie, a query token) and
    // admits the socket: to an identity, to the documents and access its credentials grant,
    // until they expire.
    let admission = Admission::default();
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                if let Err(error) = acceptor.accept_upgraded(io, admission).await {
                    debug!(%error, "socket closed during the handshake");
                }
            }
            Err(error) => debug!(%error, "upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, websocket_accept_key(&key))
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Starts a repo whose network is the acceptor, and serves the router.
#[allow(dead_code)] // the tests include this file for `router` only
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3030".to_owned());
    let (adapter, acceptor) = WebSocketAcceptor::new(ServerConfig::default());
    let repo = Repo::builder()
        .share_policy(AskOnly)
        .network(adapter)
        .start()
        .await?;
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("serving ws://{}/sync", listener.local_addr()?);
    axum::serve(listener, router(acceptor))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    repo.shutdown().await;
    Ok(())
}
