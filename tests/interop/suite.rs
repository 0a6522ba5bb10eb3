//! The interop suite: the real JS automerge-repo 2.5.6 packages against tandem over WebSocket,
//! both ways: JS clients against tandem-server, and tandem clients against a JS sync server
//! (NodeFS storage, `sharePolicy: false`), as `tests/js/ws-peer.mjs` runs them. Each test
//! target that includes it says how tandem-server runs (`crate::CLUSTER`).

use std::path::Path;
use std::time::Duration;

use crate::common::{doc_to_tagged_json as tagged, NodeProcess};
use crate::served::{serve, try_serve, Served};
use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ScalarValue, ROOT};
use clap::Parser;
use futures::StreamExt;
use serde_json::{json, Value as Json};
use tandem::net_ws::{ClientConfig, ServerConfig, WebSocketClient, WebSocketServer};
use tandem::repo::presence::PresenceConfig;
use tandem::{Access, DocHandle, FnSharePolicy, Repo};
use tandem_server::{Options, Server};

const PATIENCE: Duration = Duration::from_secs(30);

fn options(data_dir: &Path) -> Options {
    // As the binary parses its command line: every flag not given takes its default.
    Options::parse_from([
        "tandem-server",
        "--port",
        "0",
        "--data-dir",
        data_dir
            .to_str()
            .expect("a temporary directory has a UTF-8 path"),
    ])
}

async fn tandem_server(data_dir: &Path) -> (Served, String) {
    let server = serve(&options(data_dir)).await;
    let url = format!("ws://{}", server.local_addr());
    (server, url)
}

/// A tandem client repo connected to `url`.
async fn tandem_client(url: &str) -> Repo {
    let adapter = WebSocketClient::new(url, ClientConfig::default()).unwrap();
    let repo = Repo::builder().network(adapter).start().await.unwrap();
    repo.wait_for_any_peer(PATIENCE)
        .await
        .expect("the server never became a peer");
    repo
}

/// [`tandem_client`] of a tandem `server`, once the server too has taken the connection in (the
/// client hears the server's `peer` a moment before; a `find` on the server meanwhile would ask
/// nobody).
async fn tandem_client_of(server: &Server, url: &str) -> Repo {
    let repo = tandem_client(url).await;
    server
        .repo()
        .wait_for_peer(repo.peer_id(), PATIENCE)
        .await
        .expect("the client never became the server's peer");
    repo
}

/// Runs a `ws-peer.mjs` command to completion and returns its one JSON line.
async fn js(args: &[&str]) -> Json {
    let mut node = NodeProcess::start("ws-peer.mjs", args);
    let out = node.next_json_async(PATIENCE).await;
    tokio::task::block_in_place(|| node.finish(PATIENCE));
    out
}

fn hex_heads(handle: &DocHandle) -> Json {
    json!(handle
        .heads()
        .unwrap()
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>())
}

/// Every kind of value a JS app stores.
async fn create_rich(repo: &Repo) -> DocHandle {
    let (handle, _) = repo
        .create_with(|tx| -> Result<(), automerge::AutomergeError> {
            let text = tx.put_object(ROOT, "text", ObjType::Text)?;
            tx.splice_text(&text, 0, 0, "text from rust")?;
            tx.put(ROOT, "raw", "a scalar string")?;
            tx.put(ROOT, "count", ScalarValue::counter(7))?;
            tx.put(ROOT, "int", 42)?;
            tx.put(ROOT, "negative", -7)?;
            tx.put(ROOT, "float", 2.25)?;
            tx.put(ROOT, "yes", true)?;
            tx.put(ROOT, "nothing", ScalarValue::Null)?;
            tx.put(ROOT, "bytes", ScalarValue::Bytes(vec![9, 8, 7, 255]))?;
            let list = tx.put_object(ROOT, "list", ObjType::List)?;
            tx.insert(&list, 0, 1)?;
            let inner = tx.insert_object(&list, 1, ObjType::Map)?;
            tx.put(&inner, "four", 4)?;
            let nested = tx.put_object(ROOT, "nested", ObjType::Map)?;
            let deeper = tx.put_object(&nested, "deeper", ObjType::List)?;
            tx.insert(&deeper, 0, "x")?;
            Ok(())
        })
        .await
        .unwrap();
    handle
}

/// Waits until `handle`'s heads are `heads` (hex strings).
async fn wait_for_heads(handle: &DocHandle, heads: &Json) {
    let mut changes = Box::pin(handle.changes());
    tokio::time::timeout(PATIENCE, async {
        while &hex_heads(handle) != heads {
            changes.next().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never reached {heads}; at {}", hex_heads(handle)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_js_client_creates_on_tandem_server_a_tandem_client_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = tandem_server(dir.path()).await;
    let created = js(&["create", &url]).await;
    let doc_url = created["url"].as_str().unwrap();

    let rust = tandem_client_of(&server, &url).await;
    let found = rust.find(doc_url).await.unwrap();
    assert_eq!(hex_heads(&found), created["heads"]);
    assert_eq!(found.with_doc(tagged).unwrap(), created["content"]);

    // A restart of the server with persistence: a JS client finds the document again.
    rust.shutdown().await;
    server.shutdown().await;
    let (server, url) = tandem_server(dir.path()).await;
    let again = js(&["find", &url, doc_url]).await;
    assert_eq!(again["heads"], created["heads"]);
    assert_eq!(again["content"], created["content"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_tandem_client_creates_a_js_client_reads_and_edits() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = tandem_server(dir.path()).await;
    let rust = tandem_client_of(&server, &url).await;
    let doc = create_rich(&rust).await;
    // The server has it once it holds our heads.
    server.repo().find(doc.url()).await.unwrap();

    let seen = js(&["find", &url, &doc.url().to_string()]).await;
    assert_eq!(seen["heads"], hex_heads(&doc));
    assert_eq!(seen["content"], doc.with_doc(tagged).unwrap());

    // Concurrent edits: JS makes 2,000 sequential changes while we make our own.
    let url_text = doc.url().to_string();
    let mut node = NodeProcess::start("ws-peer.mjs", &["edit", &url, &url_text, "2000"]);
    for i in 0..20 {
        doc.change(|tx| tx.put(ROOT, format!("rust{i}"), i))
            .unwrap()
            .unwrap();
        tokio::task::yield_now().await;
    }
    let edited = node.next_json_async(PATIENCE).await;
    tokio::task::block_in_place(|| node.finish(PATIENCE));
    assert_eq!(edited["content"]["count"], json!({"$counter": 2007}));
    // We converge on everything JS saw plus our own changes: find the merged state.
    let merged = tokio::time::timeout(PATIENCE, async {
        let mut changes = Box::pin(doc.changes());
        loop {
            let now = doc.with_doc(tagged).unwrap();
            let text_len = now["text"].as_str().map_or(0, str::len);
            let rust_keys = now
                .as_object()
                .map_or(0, |m| m.keys().filter(|k| k.starts_with("rust")).count());
            if now["count"] == json!({"$counter": 2007})
                && text_len == "text from rust".len() + 2000
                && rust_keys == 20
            {
                return;
            }
            changes.next().await;
        }
    })
    .await;
    assert!(
        merged.is_ok(),
        "never converged: {}",
        doc.with_doc(tagged).unwrap()
    );
    rust.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_document_is_unavailable_to_js_at_once_and_a_big_one_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = tandem_server(dir.path()).await;
    let missing = js(&["missing", &url]).await;
    assert!(
        missing["error"].as_str().unwrap().contains("unavailable"),
        "{missing}"
    );
    // Not the 60 s find timeout: the server says doc-unavailable as soon as it knows.
    assert!(missing["ms"].as_u64().unwrap() < 10_000, "{missing}");

    let big = js(&["big", &url, "1000000"]).await;
    let rust = tandem_client_of(&server, &url).await;
    let found = rust.find(big["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(hex_heads(&found), big["heads"]);
    let length = found
        .with_doc(|d| {
            let blob = d.get(ROOT, "blob").unwrap().unwrap().1;
            d.text(&blob).unwrap().len()
        })
        .unwrap();
    assert_eq!(length, 1_000_000);
    rust.shutdown().await;
    server.shutdown().await;
}

/// Runs `ws-peer.mjs ephemeral` against `url` on `doc` (held by `rust`): JS's message must
/// reach `doc`, and `doc`'s must reach JS under `rust`'s id. Returns who `doc` heard JS's
/// message from.
async fn exchange_ephemeral(url: &str, doc: &DocHandle, rust: &Repo) -> tandem::PeerId {
    let mut messages = Box::pin(doc.ephemeral_messages());
    let mut node = NodeProcess::start("ws-peer.mjs", &["ephemeral", url, &doc.url().to_string()]);
    assert_eq!(node.next_json_async(PATIENCE).await, json!({"ready": true}));
    let from_js = tokio::time::timeout(PATIENCE, messages.next())
        .await
        .expect("no ephemeral message from JS")
        .unwrap();
    let value: ciborium::Value = ciborium::from_reader(from_js.data.as_slice()).unwrap();
    assert_eq!(
        value,
        ciborium::Value::Map(vec![("from".into(), "js".into())])
    );
    doc.broadcast(&json!({"from": "rust"})).await.unwrap();
    let received = node.next_json_async(PATIENCE).await;
    assert_eq!(received["received"]["message"], json!({"from": "rust"}));
    assert_eq!(
        received["received"]["senderId"],
        json!(rust.peer_id().as_str())
    );
    tokio::task::block_in_place(|| node.finish(PATIENCE));
    from_js.sender_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_messages_cross_between_js_and_tandem_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = tandem_server(dir.path()).await;
    let rust = tandem_client_of(&server, &url).await;
    let doc = create_rich(&rust).await;
    server.repo().find(doc.url()).await.unwrap();
    exchange_ephemeral(&url, &doc, &rust).await;
    rust.shutdown().await;
    server.shutdown().await;
}

/// A Rust relay between a JS client and tandem-server forwards ephemeral messages under their
/// senders' ids, both ways: the server delivers what the relay forwards for the JS client
/// (whose id is not the one the relay's socket joined with), and the JS client hears a tandem
/// client of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_messages_cross_a_rust_relay_to_tandem_server_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = tandem_server(dir.path()).await;
    let rust = tandem_client_of(&server, &url).await;
    let doc = create_rich(&rust).await;
    server.repo().find(doc.url()).await.unwrap();
    let listener = WebSocketServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap();
    let relay_url = format!("ws://{}", listener.local_addr().unwrap());
    let relay = Repo::builder()
        .peer_id("relay")
        .network(listener)
        .network(WebSocketClient::new(&url, ClientConfig::default()).unwrap())
        .start()
        .await
        .unwrap();
    relay
        .wait_for_peer(server.repo().peer_id(), PATIENCE)
        .await
        .unwrap();
    relay.find(doc.url()).await.unwrap();
    let js_sender = exchange_ephemeral(&relay_url, &doc, &rust).await;
    assert_ne!(js_sender, *relay.peer_id());
    assert_ne!(js_sender, *server.repo().peer_id());
    for repo in [relay, rust] {
        repo.shutdown().await;
    }
    server.shutdown().await;
}

/// A server keeping documents in memory presents a storage id, as a JS repo with in-memory
/// storage does: a JS client uses it to learn which of its changes the server holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tandem_server_in_memory_tells_a_js_client_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&Options {
        memory: true,
        ..options(dir.path())
    })
    .await;
    let url = format!("ws://{}", server.local_addr());
    // `create` waits until the server's storage id reports the document's heads.
    let created = js(&["create", &url]).await;
    let found = server
        .repo()
        .find(created["url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(hex_heads(&found), created["heads"]);
    assert!(server.repo().storage_id().is_some());
    server.shutdown().await;
}

/// Runs `ws-peer.mjs write-then-follow` (as peer "reader") against `url` on `doc`, a document
/// the server holds and lets the reader read only: its change must not be applied, and a later
/// change of the server's must reach it.
async fn js_reader_reads_and_does_not_write(url: &str, doc: &DocHandle) {
    let mut messages = Box::pin(doc.ephemeral_messages());
    let mut node = NodeProcess::start(
        "ws-peer.mjs",
        &["write-then-follow", url, &doc.url().to_string(), "later"],
    );
    // Sent after the sync message that carried (or, told the server is read-only, left out)
    // the client's change: by now the server has decided on it.
    tokio::time::timeout(PATIENCE, messages.next())
        .await
        .expect("no ephemeral message from JS")
        .unwrap();
    assert_eq!(node.next_json_async(PATIENCE).await, json!({"ready": true}));
    let applied = doc
        .with_doc(|d| d.get(ROOT, "js").unwrap().is_some())
        .unwrap();
    assert!(!applied, "a read-only client's change was applied");

    doc.change(|tx| tx.put(ROOT, "later", 1)).unwrap().unwrap();
    let followed = node.next_json_async(PATIENCE).await;
    assert_eq!(followed["content"]["later"], json!(1));
    assert_eq!(followed["content"]["js"], json!(true));
    tokio::task::block_in_place(|| node.finish(PATIENCE));
}

/// A JS client the share policy lets read but not write receives the document and every later
/// change; its own change is never applied (and so never stored or relayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_js_client_receives_everything_and_changes_nothing() {
    let listener = WebSocketServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let server = Repo::builder()
        .network(listener)
        .share_policy(FnSharePolicy::new(
            |_, _| false,
            |peer, _| match peer.as_str() {
                "reader" => Access::ReadOnly,
                _ => Access::ReadWrite,
            },
        ))
        .start()
        .await
        .unwrap();
    let doc = create_rich(&server).await;
    js_reader_reads_and_does_not_write(&url, &doc).await;
    server.shutdown().await;
}

/// Presence between a Rust client and a JS client (automerge-repo 2.5.6's `Presence`) through
/// tandem-server: each sees the other's state and updates, and the JS peer's goodbye makes the
/// Rust side forget it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shared_with_a_js_peer_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = tandem_server(dir.path()).await;
    let rust = tandem_client_of(&server, &url).await;
    let doc = create_rich(&rust).await;
    server.repo().find(doc.url()).await.unwrap();
    let config = PresenceConfig {
        heartbeat: Duration::from_millis(200),
        peer_ttl: Duration::from_secs(1),
    };
    let presence = doc.presence(
        config,
        json!({"name": "rust"}).as_object().cloned().unwrap(),
    );
    let mut peers = presence.peer_changes();

    let mut node = NodeProcess::start("ws-peer.mjs", &["presence", &url, &doc.url().to_string()]);
    let saw = node.next_json_async(PATIENCE).await;
    assert_eq!(saw["saw"], json!({"name": "rust"}));
    assert_eq!(saw["peerId"], json!(rust.peer_id().as_str()));
    let named_js_at_42 =
        |peers: &std::collections::BTreeMap<_, tandem::repo::presence::PeerPresence>| {
            peers.values().any(|p| {
                p.state.get("name") == Some(&json!("js"))
                    && p.state.get("cursor") == Some(&json!(42))
            })
        };
    tokio::time::timeout(PATIENCE, peers.wait_for(named_js_at_42))
        .await
        .expect("the JS peer's presence never arrived")
        .unwrap();

    presence.broadcast("cursor", json!(7)).unwrap();
    assert_eq!(node.next_json_async(PATIENCE).await, json!({"cursor": 7}));
    assert_eq!(
        node.next_json_async(PATIENCE).await,
        json!({"stopped": true})
    );
    tokio::time::timeout(PATIENCE, peers.wait_for(|p| p.is_empty()))
        .await
        .expect("the JS peer's goodbye was not heard")
        .unwrap();
    tokio::task::block_in_place(|| node.finish(PATIENCE));
    presence.stop().await;
    rust.shutdown().await;
    server.shutdown().await;
}

/// The secret of the servers started by [`secured_server`].
const SECRET: &str = "js interop secret";

/// A tandem-server that requires tokens signed with [`SECRET`].
async fn secured_server(data_dir: &Path) -> Served {
    serve(&Options {
        auth_jwt_secret: Some(SECRET.into()),
        ..options(data_dir)
    })
    .await
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed with [`SECRET`] with these claims, valid for an hour unless they say `exp`.
fn token(claims: Json) -> String {
    signed(claims, SECRET)
}

/// [`token`], signed with `secret`.
fn signed(mut claims: Json, secret: &str) -> String {
    if claims.get("exp").is_none() {
        claims["exp"] = json!(unix_now() + 3600);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A JS client of a server that requires tokens connects with `?token=` (as a browser must):
/// it finds a document its token grants, and one it does not is unavailable to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_client_with_a_query_token_gets_what_it_grants() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path()).await;
    let granted = create_rich(server.repo()).await;
    let other = create_rich(server.repo()).await;
    let token = token(json!({"docs": [granted.url().to_string()]}));
    let url = format!("ws://{}/?token={token}", server.local_addr());

    let found = js(&["find-status", &url, &granted.url().to_string()]).await;
    assert_eq!(found["heads"], hex_heads(&granted));
    let refused = js(&["find-status", &url, &other.url().to_string()]).await;
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("unavailable")),
        "{refused}"
    );
    server.shutdown().await;
}

/// A JS client whose token grants read access only receives the document and later changes,
/// and its own change is never applied at the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_client_with_a_read_only_token_reads_and_does_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path()).await;
    let doc = create_rich(server.repo()).await;
    let token = token(json!({"docs": ["*"], "access": "read", "sub": "reader"}));
    let url = format!("ws://{}/sync?token={token}", server.local_addr());
    js_reader_reads_and_does_not_write(&url, &doc).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_clients_sync_through_the_js_sync_server() {
    let dir = tempfile::tempdir().unwrap();
    let js_server = NodeProcess::start(
        "ws-peer.mjs",
        &["server", dir.path().to_str().unwrap(), "0"],
    );
    let listening = js_server.next_json(PATIENCE);
    let url = listening["listening"].as_str().unwrap().to_owned();

    // tandem creates; JS reads through its own server.
    let rust = tandem_client(&url).await;
    let doc = create_rich(&rust).await;
    let server_peer = tandem::PeerId::from(listening["peerId"].as_str().unwrap());
    rust.wait_for_peer(&server_peer, PATIENCE).await.unwrap();
    let server_storage = rust.peers()[&server_peer]
        .storage_id
        .clone()
        .expect("the JS server has storage");
    let mut events = Box::pin(doc.remote_heads_changes());
    tokio::time::timeout(PATIENCE, async {
        while doc.remote_heads(&server_storage).map(|e| e.heads) != Some(doc.heads().unwrap()) {
            events.next().await;
        }
    })
    .await
    .expect("the JS server never acknowledged our heads");
    let seen = js(&["find", &url, &doc.url().to_string()]).await;
    assert_eq!(seen["content"], doc.with_doc(tagged).unwrap());

    // JS creates; a second tandem client reads it through the JS server.
    let created = js(&["create", &url]).await;
    let other = tandem_client(&url).await;
    let found = other.find(created["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(found.with_doc(tagged).unwrap(), created["content"]);
    wait_for_heads(&found, &created["heads"]).await;
    rust.shutdown().await;
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_client_reconnects_after_tandem_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = tandem_server(dir.path()).await;
    let port = server.local_addr().port();
    let created = js(&["create", &url]).await;
    let doc_url = created["url"].as_str().unwrap().to_owned();

    let mut node = NodeProcess::start("ws-peer.mjs", &["reconnect", &url, &doc_url]);
    assert_eq!(node.next_json_async(PATIENCE).await["phase"], "connected");
    server.shutdown().await;
    assert_eq!(
        node.next_json_async(PATIENCE).await["phase"],
        "disconnected"
    );

    // Same port again, once the old listener has let go of it.
    let mut again = options(dir.path());
    again.port = port;
    let server = tokio::time::timeout(PATIENCE, async {
        loop {
            match try_serve(&again).await {
                Ok(server) => return server,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the port never came free");
    let synced = node.next_json_async(PATIENCE).await;
    assert_eq!(synced["phase"], "synced");
    tokio::task::block_in_place(|| node.finish(PATIENCE));

    // The change JS made after the restart is on the server.
    let on_server = server.repo().find(doc_url.as_str()).await.unwrap();
    assert_eq!(hex_heads(&on_server), synced["heads"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_client_hears_through_tandem_server_which_heads_a_tandem_storage_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut gossiping = options(dir.path());
    gossiping.remote_heads_gossip = true;
    let server = serve(&gossiping).await;
    let url = format!("ws://{}", server.local_addr());

    // A tandem writer with storage of its own: its storage id is what JS subscribes to.
    let adapter = WebSocketClient::new(url.as_str(), ClientConfig::default()).unwrap();
    let writer = Repo::builder()
        .storage(tandem::storage_mem::MemoryStorage::new())
        .network(adapter)
        .start()
        .await
        .unwrap();
    let mut peers = writer.peer_changes();
    tokio::time::timeout(PATIENCE, peers.wait_for(|p| !p.is_empty()))
        .await
        .unwrap()
        .unwrap();
    let doc = create_rich(&writer).await;
    let on_server = server.repo().find(doc.url()).await.unwrap();
    wait_for_heads(&on_server, &hex_heads(&doc)).await;

    let storage = writer.storage_id().unwrap().to_string();
    let heard = js(&["gossip", &url, &doc.url().to_string(), &storage]).await;
    assert_eq!(heard["heads"], hex_heads(&doc));
    writer.shutdown().await;
    server.shutdown().await;
}

const ADMIN_TOKEN: &str = "admin-secret";

/// `method path` with `body` over a fresh connection to the server's port, with the admin
/// token `token`: the status code and body.
async fn admin(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: tandem\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("no answer in time")
        .unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    (status, response[split + 4..].to_vec())
}

/// The admin API's round trip with real JS clients: a document imported by its bytes is found
/// by a JS client, read back as JSON and as bytes; deleted, it is gone from storage, and the JS
/// client that still holds it cannot bring it back, before or after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_imports_serves_and_deletes_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let with_admin = Options {
        admin_token: Some(ADMIN_TOKEN.into()),
        ..options(dir.path())
    };
    let server = serve(&with_admin).await;
    let url = format!("ws://{}", server.local_addr());
    let mut doc = automerge::AutoCommit::new();
    let text = doc.put_object(ROOT, "title", ObjType::Text).unwrap();
    doc.splice_text(&text, 0, 0, "imported").unwrap();
    doc.put(ROOT, "count", ScalarValue::counter(3)).unwrap();
    doc.put(ROOT, "bytes", ScalarValue::Bytes(vec![1, 2, 3]))
        .unwrap();
    let bytes = doc.save();

    let (status, _) = admin(&server, "POST", "/v1/docs", "wrong", &bytes).await;
    assert_eq!(status, 401);
    let (status, _) = admin(&server, "POST", "/v1/docs", ADMIN_TOKEN, b"not automerge").await;
    assert_eq!(status, 400);
    let (status, body) = admin(&server, "POST", "/v1/docs", ADMIN_TOKEN, &bytes).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let created: Json = serde_json::from_slice(&body).unwrap();
    let doc_url = created["url"].as_str().unwrap().to_owned();
    let id = doc_url.strip_prefix("automerge:").unwrap().to_owned();

    let found = js(&["find", &url, &doc_url]).await;
    assert_eq!(found["content"]["title"], "imported");
    assert_eq!(found["content"]["count"], json!({"$counter": 3}));
    let (status, body) = admin(&server, "GET", &format!("/v1/docs/{id}"), ADMIN_TOKEN, b"").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Json>(&body).unwrap(),
        json!({"title": "imported", "count": 3, "bytes": "AQID"})
    );
    let (status, body) = admin(
        &server,
        "GET",
        &format!("/v1/docs/{id}/export"),
        ADMIN_TOKEN,
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let exported = automerge::Automerge::load(&body).unwrap();
    assert_eq!(exported.get_heads(), doc.get_heads());

    let mut holder = NodeProcess::start("ws-peer.mjs", &["hold-then-edit", &url, &doc_url]);
    assert_eq!(holder.next_json_async(PATIENCE).await["found"], true);
    let (status, _) = admin(
        &server,
        "DELETE",
        &format!("/v1/docs/{id}"),
        ADMIN_TOKEN,
        b"",
    )
    .await;
    assert_eq!(status, 204);
    holder.send_line("edit");
    assert_eq!(
        holder.next_json_async(PATIENCE).await["answer"],
        "doc-unavailable"
    );
    tokio::task::block_in_place(|| holder.finish(PATIENCE));
    let (status, _) = admin(&server, "GET", &format!("/v1/docs/{id}"), ADMIN_TOKEN, b"").await;
    assert_eq!(status, 404);
    // Nothing of the document is left in storage but its tombstone.
    let left = crate::served::kinds_stored(&with_admin, &id).await;
    assert_eq!(left, vec!["tombstone".to_owned()]);

    server.shutdown().await;
    let server = serve(&with_admin).await;
    let url = format!("ws://{}", server.local_addr());
    let status = js(&["find-status", &url, &doc_url]).await;
    assert!(status["error"].is_string(), "{status}");
    let (status, _) = admin(&server, "GET", &format!("/v1/docs/{id}"), ADMIN_TOKEN, b"").await;
    assert_eq!(status, 404);
    server.shutdown().await;
}

/// A JS client's change larger than `--max-change-bytes` is refused: the server's next sync
/// message shows it without the change, the server keeps the document as it was, counts the
/// refusal, and goes on serving the document to others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_clients_change_over_the_size_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&Options {
        max_change_bytes: 50_000,
        ..options(dir.path())
    })
    .await;
    let url = format!("ws://{}", server.local_addr());
    let created = js(&["create", &url]).await;
    let doc_url = created["url"].as_str().unwrap();
    let answered = js(&["oversize", &url, doc_url, "200000"]).await;
    assert_ne!(answered["server"], answered["mine"]);
    assert_eq!(answered["server"], created["heads"]);
    let held = server.repo().find(doc_url).await.unwrap();
    assert_eq!(hex_heads(&held), created["heads"]);
    let found = js(&["find", &url, doc_url]).await;
    assert_eq!(found["heads"], created["heads"]);
    // Counted before the answer the JS client waited for went out.
    let (_, metrics) = admin(&server, "GET", "/metrics", "", b"").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("tandem_changes_refused_total{reason=\"change\"} 1"),
        "{metrics}"
    );
    server.shutdown().await;
}

/// A real JS client with a browser-style query token: refused before the upgrade when the token
/// is badly signed or expired; refused at the join when it joins as someone the token does not
/// name (one user's tabs, `sub/…`, are welcome); and closed with the documented code when its
/// token expires while it is connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_clients_token_is_checked_at_the_upgrade_at_the_join_and_when_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path()).await;
    let url_with = |token: String| format!("ws://{}/sync?token={token}", server.local_addr());
    let outcome = |url: String, peer: &'static str| async move {
        let mut node = NodeProcess::start("ws-peer.mjs", &["token-outcome", &url, peer]);
        let mut lines = Vec::new();
        loop {
            let line = node.next_json_async(PATIENCE).await;
            let last = line.get("joined").is_none();
            lines.push(line);
            if last {
                break;
            }
        }
        tokio::task::block_in_place(|| node.finish(PATIENCE));
        lines
    };
    let everything = json!({"docs": ["*"], "sub": "ada"});

    let forged = outcome(
        url_with(signed(everything.clone(), "not the secret")),
        "ada",
    )
    .await;
    assert!(
        forged[0]["error"].as_str().unwrap().contains("401"),
        "{forged:?}"
    );
    let expired = token(json!({"docs": ["*"], "sub": "ada", "exp": unix_now() - 60}));
    let expired = outcome(url_with(expired), "ada").await;
    assert!(
        expired[0]["error"].as_str().unwrap().contains("401"),
        "{expired:?}"
    );

    let impostor = outcome(url_with(token(everything.clone())), "mallory").await;
    assert!(
        impostor.iter().all(|line| line.get("joined").is_none()),
        "{impostor:?}"
    );
    assert!(
        impostor.last().unwrap().get("closed").is_some(),
        "{impostor:?}"
    );

    let brief = token(json!({"docs": ["*"], "sub": "ada", "exp": unix_now() + 2}));
    let tab = outcome(url_with(brief), "ada/tab-1").await;
    assert_eq!(tab[0], json!({"joined": true}), "{tab:?}");
    assert_eq!(
        tab.last().unwrap()["closed"],
        json!(tandem::net_ws::CREDENTIALS_EXPIRED),
        "{tab:?}"
    );
    server.shutdown().await;
}
