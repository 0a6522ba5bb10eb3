//! The samod server under test: samod 0.16 with its filesystem storage (the NodeFS layout),
//! serving whoever asks and announcing nothing, like the other two. Run by the bench as a child
//! process (`tandem-bench serve-samod --data-dir …`) so its CPU and memory are its own.

use std::path::Path;

use samod::storage::TokioFilesystemStorage;
use samod::{Repo, ShareConfig, Url};
use tokio::net::TcpListener;
use tracing::debug;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Serves until SIGTERM or ctrl-c, then stops the repo (which finishes its storage writes).
pub async fn serve(data_dir: &Path) -> Result<(), Error> {
    let repo = Repo::build_tokio()
        .with_storage(TokioFilesystemStorage::new(data_dir))
        .with_share_policy(ShareConfig::read_write().with_announce(false))
        .load()
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = repo.make_acceptor(Url::parse(&format!("ws://{addr}"))?)?;
    println!("listening on ws://{addr}");
    let accepting = acceptor.clone();
    let accept_loop = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = accepting.clone();
            tokio::spawn(async move {
                match tokio_tungstenite_samod::accept_async(tcp).await {
                    Ok(ws) => {
                        if let Err(error) = acceptor.accept_tungstenite(ws) {
                            debug!(?error, "samod refused a socket");
                        }
                    }
                    Err(error) => debug!(%error, "websocket handshake failed"),
                }
            });
        }
    });
    tandem_server::stop_signal().await;
    accept_loop.abort();
    acceptor.close();
    repo.stop().await;
    Ok(())
}
