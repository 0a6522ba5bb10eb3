//! The `tandem-server` binary as a user runs it: starts, serves, stops on SIGTERM with exit 0,
//! and serves what it stored after a restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use tandem_net_ws::{ClientConfig, WebSocketClient};
use tandem_repo::Repo;

const PATIENCE: Duration = Duration::from_secs(20);

/// Starts the binary on a free port; returns the process and its WebSocket URL.
fn start(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args(["--port", "0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start tandem-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {} // keep the pipe drained
    });
    let line = rx
        .recv_timeout(PATIENCE)
        .expect("the server never said where it listens");
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (child, url)
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(PATIENCE)
        .expect("the server did not stop after SIGTERM")
        .expect("wait")
}

/// Waits until `doc`'s handle reports that `storage` holds its current heads.
async fn wait_for_remote_heads(doc: &tandem_repo::DocHandle, storage: &tandem_core::StorageId) {
    use futures::StreamExt;
    let heads = doc.heads().unwrap();
    let mut events = Box::pin(doc.remote_heads_changes());
    tokio::time::timeout(PATIENCE, async {
        while doc.remote_heads(storage).map(|e| e.heads) != Some(heads.clone()) {
            events.next().await;
        }
    })
    .await
    .expect("the server never reported our heads");
}

async fn client(url: &str) -> Repo {
    let adapter = WebSocketClient::new(url, ClientConfig::default()).unwrap();
    let mut states = adapter.states();
    let repo = Repo::builder().network(adapter).start().await.unwrap();
    tokio::time::timeout(
        PATIENCE,
        states.wait_for(|s| *s == tandem_net_ws::ConnectionState::Online),
    )
    .await
    .expect("never online")
    .unwrap();
    // Online means the repo has been handed the connection; wait until it has registered it.
    let mut peers = repo.peer_changes();
    tokio::time::timeout(PATIENCE, peers.wait_for(|p| !p.is_empty()))
        .await
        .expect("the server never became a peer")
        .unwrap();
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_survive_a_clean_restart_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = start(dir.path());
    let alice = client(&url).await;
    let (doc, _) = alice
        .create_with(|tx| tx.put(ROOT, "kept", "yes"))
        .await
        .unwrap();
    // Alice learns that the server's storage holds her heads (the "synced" indicator).
    let (_, server_meta) = alice
        .peers()
        .into_iter()
        .next()
        .expect("the server is a peer");
    let server_storage = server_meta.storage_id.expect("the server has storage");
    wait_for_remote_heads(&doc, &server_storage).await;
    let bob = client(&url).await;
    let found = bob.find(doc.url()).await.unwrap();
    assert_eq!(found.heads().unwrap(), doc.heads().unwrap());
    alice.shutdown().await;
    bob.shutdown().await;

    let status = terminate(server);
    assert!(status.success(), "exit status {status:?}");

    let (server, url) = start(dir.path());
    let carol = client(&url).await;
    let again = carol.find(doc.url()).await.unwrap();
    let kept = again
        .with_doc(|d| d.get(ROOT, "kept").unwrap().unwrap().0.to_string())
        .unwrap();
    assert_eq!(kept, "\"yes\"");
    carol.shutdown().await;
    assert!(terminate(server).success());
}
