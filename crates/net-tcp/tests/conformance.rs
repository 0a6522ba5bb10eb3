//! The TCP adapters pass the network conformance suite, over a TCP port and over a Unix socket.

use std::time::Duration;

use tandem_core::network::conformance::{run_all, AdapterPair};
use tandem_net_tcp::{ClientConfig, ServerConfig, TcpClient, TcpServer};

const PATIENCE: Duration = Duration::from_secs(60);

fn client_config() -> ClientConfig {
    ClientConfig {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..ClientConfig::default()
    }
}

/// `server` and a client of it.
fn with_client(server: TcpServer) -> AdapterPair {
    let endpoint = server.local_endpoint().expect("bound");
    let client = TcpClient::new(endpoint, client_config());
    (Box::new(server), Box::new(client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_server_and_client_pass_the_network_conformance_suite() {
    let suite = run_all(|| async {
        let server = TcpServer::bind("127.0.0.1:0", ServerConfig::default())
            .await
            .expect("bind on loopback");
        with_client(server)
    });
    tokio::time::timeout(PATIENCE, suite)
        .await
        .expect("a check waited forever");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unix_socket_server_and_client_pass_the_network_conformance_suite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut n = 0;
    let suite = run_all(|| {
        n += 1;
        let path = dir.path().join(format!("tandem-{n}.sock"));
        async move {
            let server = TcpServer::bind_unix(path, ServerConfig::default()).expect("bind");
            with_client(server)
        }
    });
    tokio::time::timeout(PATIENCE, suite)
        .await
        .expect("a check waited forever");
}
