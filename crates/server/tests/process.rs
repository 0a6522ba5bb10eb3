//! The `tandem-server` binary as a user runs it: starts, serves, stops on SIGTERM or SIGHUP
//! with exit 0, and serves what it stored after a restart.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{acknowledged, kill_hard, start_server, stop_with, terminate, ServerProcess};
use automerge::{transaction::Transactable, ReadDoc, ROOT};
use tandem_net_ws::{ClientConfig, WebSocketClient};
use tandem_repo::Repo;

const PATIENCE: Duration = Duration::from_secs(20);

fn start(data_dir: &std::path::Path) -> (ServerProcess, String) {
    start_with(data_dir, &[])
}

fn start_with(data_dir: &std::path::Path, extra: &[&std::ffi::OsStr]) -> (ServerProcess, String) {
    let mut args = vec![std::ffi::OsStr::new("--data-dir"), data_dir.as_os_str()];
    args.extend_from_slice(extra);
    start_server(&args)
}

async fn client(url: &str) -> Repo {
    client_with(url, ClientConfig::default()).await
}

/// A client repo connected to `url`, once the server is its peer.
async fn client_with(url: &str, config: ClientConfig) -> Repo {
    let adapter = WebSocketClient::new(url, config).unwrap();
    let repo = Repo::builder().network(adapter).start().await.unwrap();
    repo.wait_for_any_peer(PATIENCE)
        .await
        .expect("the server never became a peer");
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
    acknowledged(&doc, &server_storage).await;
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
    // SIGHUP (a closing terminal) stops it in order too: exit 0, not death by the signal.
    let status = stop_with(server, "HUP");
    assert!(status.success(), "exit status {status:?}");
}

/// A client writes and records every change the server acknowledged (its storage holds our
/// heads); the server is killed with SIGKILL at a random moment; after a restart every
/// acknowledged change is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_kill_9() {
    use automerge::ChangeHash;
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let mut doc_url = None;
    for round in 0..3u64 {
        let (mut server, url) = start(dir.path());
        let writer = client(&url).await;
        let (_, meta) = writer.peers().into_iter().next().unwrap();
        let server_storage = meta.storage_id.expect("the server has storage");
        let doc = match &doc_url {
            None => {
                let (doc, _) = writer.create_with(|tx| tx.put(ROOT, "n", 0)).await.unwrap();
                doc_url = Some(doc.url());
                doc
            }
            Some(url) => writer.find(url.clone()).await.unwrap(),
        };
        let mut acks = Box::pin(doc.remote_heads_changes());
        // Kill after a few acknowledged changes, at a moment chosen by the clock.
        let (first_acks_tx, first_acks_rx) = std::sync::mpsc::channel::<()>();
        let (killed_tx, mut killed) = tokio::sync::watch::channel(false);
        let killer = std::thread::spawn(move || {
            let _ = first_acks_rx.recv_timeout(PATIENCE);
            let jitter = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
                % 40;
            std::thread::sleep(Duration::from_millis(jitter));
            kill_hard(&mut server);
            let _ = killed_tx.send(true);
        });
        let mut acknowledged: Vec<ChangeHash> = Vec::new();
        let mut count = 0u64;
        for i in 0..10_000u64 {
            doc.change(|tx| tx.put(ROOT, "n", (round * 100_000 + i) as i64))
                .unwrap()
                .unwrap();
            let heads = doc.heads().unwrap();
            // Wait for this change's acknowledgement, or for the kill, which ends the round.
            let ack = async {
                loop {
                    if let Some(remote) = doc.remote_heads(&server_storage) {
                        if remote.heads == heads {
                            return;
                        }
                    }
                    if acks.next().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            let acked = tokio::select! {
                _ = ack => true,
                _ = killed.wait_for(|k| *k) => false,
                _ = tokio::time::sleep(PATIENCE) => panic!("round {round}: no acknowledgement and no kill"),
            };
            if !acked {
                break;
            }
            acknowledged = heads;
            count += 1;
            if count == 5 {
                let _ = first_acks_tx.send(());
            }
        }
        killer.join().unwrap();
        writer.shutdown().await;
        assert!(
            count >= 5,
            "round {round}: only {count} changes acknowledged"
        );

        let missing = missing_after_restart(dir.path(), doc_url.clone().unwrap(), &acknowledged)
            .await
            .unwrap_or_else(|e| {
                panic!("round {round}: {count} changes acknowledged, all lost: {e}")
            });
        assert!(
            missing.is_empty(),
            "round {round}: {count} changes acknowledged, lost {missing:?}"
        );
    }
}

/// Restarts the server on `data_dir` and returns which of `heads` (and so of the changes they
/// stand for) its copy of `doc` lacks.
async fn missing_after_restart(
    data_dir: &std::path::Path,
    doc: tandem_core::AutomergeUrl,
    heads: &[automerge::ChangeHash],
) -> Result<Vec<automerge::ChangeHash>, tandem_repo::RepoError> {
    let (server, url) = start(data_dir);
    let reader = client(&url).await;
    let found = reader.find(doc).await;
    let missing = found.map(|found| {
        found
            .with_doc(|d| crate::common::lacking(d, heads))
            .unwrap()
    });
    reader.shutdown().await;
    assert!(terminate(server).success());
    missing
}

/// A writer that does not wait for answers writes faster than the disk syncs: the server
/// answers it save by save, each answer once the changes it acknowledges are durable. Killed
/// with SIGKILL at a random moment, the server has, after a restart, every change of the last
/// heads it acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_does_not_wait_is_acknowledged_only_what_survives_kill_9() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = start(dir.path());
    let writer = client(&url).await;
    let (_, meta) = writer.peers().into_iter().next().unwrap();
    let server_storage = meta.storage_id.expect("the server has storage");
    let (doc, _) = writer.create_with(|tx| tx.put(ROOT, "n", 0)).await.unwrap();

    let (killed_tx, killed) = tokio::sync::watch::channel(false);
    let writing = {
        let doc = doc.clone();
        let mut killed = killed.clone();
        tokio::spawn(async move {
            let mut n = 0i64;
            let until = tokio::time::Instant::now() + PATIENCE;
            while !*killed.borrow_and_update() && tokio::time::Instant::now() < until {
                n += 1;
                doc.change(|tx| tx.put(ROOT, "n", n)).unwrap().unwrap();
                // As fast as the runtime lets it: every save finds newer changes waiting.
                tokio::task::yield_now().await;
            }
            n
        })
    };
    // Every acknowledgement, while the writer keeps writing; the kill comes after the 20th.
    let mut acks = Box::pin(doc.remote_heads_changes());
    let mut acknowledged = Vec::new();
    let mut count = 0;
    while count < 20 {
        let event = tokio::time::timeout(PATIENCE, acks.next())
            .await
            .expect("no acknowledgement while the writer kept writing")
            .expect("events end only at shutdown");
        if event.storage_id == server_storage {
            acknowledged = event.heads;
            count += 1;
        }
    }
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 40;
    let mut last_before_kill = acknowledged.clone();
    let _ = tokio::time::timeout(Duration::from_millis(jitter), async {
        while let Some(event) = acks.next().await {
            if event.storage_id == server_storage {
                last_before_kill = event.heads;
            }
        }
    })
    .await;
    kill_hard(&mut server);
    let _ = killed_tx.send(true);
    let written = writing.await.unwrap();
    // Answers that were on the way when the server died still count.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::ZERO, acks.next()).await {
        if event.storage_id == server_storage {
            last_before_kill = event.heads;
        }
    }
    writer.shutdown().await;
    assert!(written > 20, "the writer wrote only {written} changes");

    let missing = missing_after_restart(dir.path(), doc.url(), &last_before_kill)
        .await
        .unwrap_or_else(|e| panic!("{written} changes written, all lost: {e}"));
    assert!(
        missing.is_empty(),
        "{written} changes written, lost acknowledged {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flags_serve_wss() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.key_pair.serialize_pem()).unwrap();
    let data = dir.path().join("data");
    let (server, url) = start_with(
        &data,
        &[
            "--tls-cert".as_ref(),
            cert_path.as_os_str(),
            "--tls-key".as_ref(),
            key_path.as_os_str(),
        ],
    );
    assert!(url.starts_with("wss://"), "{url}");
    let config = ClientConfig {
        tls: Some(tandem_net_ws::tls::client_config([generated.cert.der().clone()]).unwrap()),
        ..ClientConfig::default()
    };
    let repo = client_with(&url, config).await;
    repo.shutdown().await;
    assert!(terminate(server).success());
}

/// Two server processes on one directory, each with a client editing the same document (and
/// compacting as the changes pile up); after both stop, the directory holds the union.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_directory_and_lose_nothing() {
    use automerge::ReadDoc;
    let dir = tempfile::tempdir().unwrap();
    let (first, first_url) = start(dir.path());
    let (second, second_url) = start(dir.path());

    let alice = client(&first_url).await;
    let (doc, _) = alice
        .create_with(|tx| tx.put(ROOT, "created", true))
        .await
        .unwrap();
    let (_, meta) = alice.peers().into_iter().next().unwrap();
    let storage = meta.storage_id.expect("storage");
    acknowledged(&doc, &storage).await;

    // The second process loads the document from the shared directory.
    let bob = client(&second_url).await;
    let theirs = bob.find(doc.url()).await.unwrap();

    const CHANGES: i64 = 300;
    for i in 0..CHANGES {
        doc.change(|tx| tx.put(ROOT, format!("a{i}"), i))
            .unwrap()
            .unwrap();
        theirs
            .change(|tx| tx.put(ROOT, format!("b{i}"), i))
            .unwrap()
            .unwrap();
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    acknowledged(&doc, &storage).await;
    acknowledged(&theirs, &storage).await;
    alice.shutdown().await;
    bob.shutdown().await;
    assert!(terminate(first).success());
    assert!(terminate(second).success());

    let store = tandem_storage_fs::FsStorage::open(dir.path()).unwrap();
    let chunks = tandem_core::storage::StorageAdapter::load_document(&store, doc.document_id())
        .await
        .unwrap()
        .chunks;
    let loaded = tandem_core::persistence::load_document(doc.document_id(), chunks);
    assert!(loaded.corrupt.is_empty(), "{:?}", loaded.corrupt);
    let union = loaded.document.expect("the document is on disk");
    for i in 0..CHANGES {
        assert!(
            union.get(ROOT, format!("a{i}")).unwrap().is_some(),
            "lost a{i}"
        );
        assert!(
            union.get(ROOT, format!("b{i}")).unwrap().is_some(),
            "lost b{i}"
        );
    }
}

/// A change automerge panics on (a crafted one, as any peer can send; see
/// `crates/core/tests/fixtures/untrusted`): the server cuts its sender off, logs the panic as a
/// log line rather than the default hook's raw print, and serves everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_automerge_panics_on_is_logged_and_the_server_serves_on() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start tandem-server");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let stderr = child.stderr.take().expect("stderr");
    let server = ServerProcess::of(child);
    let url = stdout
        .next()
        .expect("the server said nothing")
        .unwrap()
        .strip_prefix("listening on ")
        .expect("where it listens")
        .to_owned();

    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    ws.send(Frame::binary(crate::common::join_as("mallory")))
        .await
        .unwrap();
    let poisoned = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: automerge::sync::ChunkList::from(vec![include_bytes!(
            "../../core/tests/fixtures/untrusted/panics.change"
        )
        .to_vec()]),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let sync = tandem_core::Message::Sync(tandem_core::SyncMessage {
        sender_id: tandem_core::PeerId::from("mallory"),
        target_id: tandem_core::PeerId::from("anyone"),
        document_id: tandem_core::DocumentId::random(),
        data: tandem_core::MessageData::new(poisoned.encode()).unwrap(),
    });
    ws.send(Frame::binary(sync.encode())).await.unwrap();
    // The server answers the join, then closes the socket.
    tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(frame)) = ws.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await
    .expect("mallory's socket stayed open");

    let honest = client(&url).await;
    let (doc, ()) = honest
        .create_with(|tx| tx.put(ROOT, "fine", true).unwrap())
        .await
        .unwrap();
    honest.flush().await.unwrap();
    let other = client(&url).await;
    let found = other.find(doc.url()).await.unwrap();
    assert_eq!(found.heads().unwrap(), doc.heads().unwrap());
    honest.shutdown().await;
    other.shutdown().await;

    assert!(terminate(server).success());
    let log: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    let log = log.join("\n");
    assert!(log.contains("panicked"), "{log}");
    assert!(log.contains("disconnecting the peer"), "{log}");
    assert!(
        !log.contains("thread '"),
        "the default panic hook printed:\n{log}"
    );
}

/// `--log-format json` writes one JSON object per line; a document's lines carry its id (here:
/// its unloading once idle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_document_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args(["--port", "0", "--log-format", "json", "--idle-seconds", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start tandem-server");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let server = ServerProcess::of(child);
    let url = BufReader::new(stdout)
        .lines()
        .next()
        .and_then(Result::ok)
        .and_then(|line| line.strip_prefix("listening on ").map(str::to_owned))
        .expect("the server never said where it listens");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    let rust = client(&url).await;
    let (doc, _) = rust.create_with(|tx| tx.put(ROOT, "n", 1)).await.unwrap();
    let id = doc.document_id().to_string();
    acknowledged(
        &doc,
        &rust
            .peers()
            .into_values()
            .find_map(|m| m.storage_id)
            .unwrap(),
    )
    .await;
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut saw_document = false;
    while !saw_document {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("no log line names the document");
        let object: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(object.get("level").is_some(), "{line}");
        saw_document = line.contains(&id);
    }
    rust.shutdown().await;
    assert!(terminate(server).success());
}

/// `tandem_documents_loaded`, read from the server at `url`'s `/metrics`.
async fn documents_loaded(url: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("ws://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: tandem\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("tandem_documents_loaded "))
        .and_then(|value| value.trim().parse().ok())
        .expect("tandem_documents_loaded in /metrics")
}

/// The server process's resident memory, in bytes.
fn rss(server: &ServerProcess) -> u64 {
    let pid = server.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A client asking for 20,000 documents that exist nowhere is told each is unavailable, and
/// within three seconds of it leaving the server holds no more memory than 64 MB over what it
/// held before: nothing stays behind per made-up id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_ids_leaves_nothing_behind() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;
    const IDS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = start(dir.path());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Frame::binary(crate::common::join_as("flooder")))
        .await
        .unwrap();
    let server_id = match tokio::time::timeout(PATIENCE, ws.next()).await {
        Ok(Some(Ok(Frame::Binary(bytes)))) => tandem_core::Message::decode(&bytes)
            .unwrap()
            .sender_id()
            .clone(),
        other => panic!("no peer message: {other:?}"),
    };
    let before = rss(&server);

    let empty = crate::common::nothing_to_sync();
    let (mut sink, mut stream) = ws.split();
    let sending = tokio::spawn(async move {
        for _ in 0..IDS {
            let request = tandem_core::Message::Request(tandem_core::SyncMessage {
                sender_id: "flooder".into(),
                target_id: server_id.clone(),
                document_id: tandem_core::DocumentId::random(),
                data: tandem_core::MessageData::new(empty.clone()).unwrap(),
            });
            sink.send(Frame::binary(request.encode())).await.unwrap();
        }
        sink
    });
    let mut unavailable = 0;
    while unavailable < IDS {
        let frame = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("the server stopped answering");
        if let Some(Ok(Frame::Binary(bytes))) = frame {
            if tandem_core::Message::decode(&bytes).unwrap().type_name() == "doc-unavailable" {
                unavailable += 1;
            }
        }
    }
    let peak = rss(&server);
    let sink = sending.await.unwrap();
    drop(sink.reunite(stream).unwrap());

    // Within three seconds: no document left in memory, and the memory back near where it was.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let settled = |loaded: f64, rss: u64| loaded == 0.0 && rss <= before + (64 << 20);
    let (mut loaded, mut after) = (documents_loaded(&url).await, rss(&server));
    while !settled(loaded, after) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (loaded, after) = (documents_loaded(&url).await, rss(&server));
    }
    eprintln!(
        "RSS before {} MB, at the peak {} MB, after {} MB",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(
        settled(loaded, after),
        "{loaded} documents still loaded; RSS {} MB before, {} MB three seconds after",
        before >> 20,
        after >> 20
    );
    terminate(server);
}

/// `--data-dir data` (a bare relative name, no `./`) is created in the working directory.
#[test]
fn a_bare_relative_data_dir_is_created_in_the_working_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args(["--port", "0", "--data-dir", "data"])
        .current_dir(cwd.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start tandem-server");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let server = ServerProcess::of(child);
    let first = stdout.next().and_then(Result::ok);
    if !first
        .as_deref()
        .is_some_and(|line| line.starts_with("listening on "))
    {
        drop(server);
        let mut why = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut why);
        panic!("the server did not start: {first:?}\n{why}");
    }
    assert!(cwd.path().join("data").is_dir());
    drop(server);
}
