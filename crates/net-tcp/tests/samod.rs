//! tandem and samod 0.16 over TCP, in both directions: each finds a document the other created
//! and sees the other's change to it. samod frames its `tokio_io` transport with tokio-util's
//! length-delimited codec; these tests are what holds our framing to it.

use std::future::Future;
use std::time::Duration;

use automerge::{transaction::Transactable, Automerge, ReadDoc, ROOT};
use futures::{Stream, StreamExt};
use tandem_net_tcp::{ClientConfig, Endpoint, ServerConfig, TcpClient, TcpServer};
use tandem_repo::{DocHandle, Repo};
use tokio::net::TcpListener;

const PATIENCE: Duration = Duration::from_secs(30);

fn text(doc: &Automerge, key: &str) -> Option<String> {
    match doc.get(ROOT, key).ok()?? {
        (automerge::Value::Scalar(scalar), _) => scalar.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Waits until `check` holds, re-checking whenever `changes` yields, for at most [`PATIENCE`].
async fn until<S: Stream + Unpin>(what: &str, mut changes: S, mut check: impl FnMut() -> bool) {
    let waiting = async {
        while !check() {
            if changes.next().await.is_none() {
                panic!("the change stream ended before {what}");
            }
        }
    };
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn patiently<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn at_tandem(doc: &DocHandle, key: &str) -> Option<String> {
    doc.with_doc(|d| text(d, key)).expect("a loaded document")
}

fn at_samod(doc: &samod::DocHandle, key: &str) -> Option<String> {
    doc.with_document(|d| text(d, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tandem_client_syncs_with_a_samod_tcp_listener() {
    let samod = samod::Repo::build_tokio().load().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let acceptor = samod
        .make_acceptor(samod::Url::parse(&format!("tcp://{addr}")).expect("a url"))
        .expect("samod runs");
    let accepting = tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            acceptor.accept_tokio_io(io).expect("samod runs");
        }
    });

    let mut initial = Automerge::new();
    initial
        .transact(|tx| tx.put(ROOT, "from", "samod"))
        .expect("a change");
    let made_by_samod = samod.create(initial).await.expect("samod runs");

    let client = TcpClient::new(Endpoint::Tcp(addr.to_string()), ClientConfig::default());
    let tandem = Repo::builder()
        .network(client)
        .start()
        .await
        .expect("tandem starts");
    // Looked for at once: the find waits for the client's first attempt to join samod.
    let found = patiently(
        "tandem to find samod's document",
        tandem.find(made_by_samod.url().to_string().as_str()),
    )
    .await
    .expect("samod has the document");
    assert_eq!(at_tandem(&found, "from").as_deref(), Some("samod"));

    found
        .change(|tx| tx.put(ROOT, "reply", "tandem"))
        .expect("loaded")
        .expect("a change");
    until(
        "samod to see tandem's change",
        Box::pin(made_by_samod.changes()),
        || at_samod(&made_by_samod, "reply").as_deref() == Some("tandem"),
    )
    .await;

    tandem.shutdown().await;
    accepting.abort();
    samod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_samod_tcp_dialer_syncs_with_a_tandem_server() {
    let server = TcpServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .expect("bind");
    let Endpoint::Tcp(addr) = server.local_endpoint().expect("bound") else {
        unreachable!("bound to TCP");
    };
    let tandem = Repo::builder()
        .network(server)
        .start()
        .await
        .expect("tandem starts");
    let made_by_tandem = tandem
        .create_with(|tx| tx.put(ROOT, "from", "tandem"))
        .await
        .expect("created")
        .0;

    let samod = samod::Repo::build_tokio().load().await;
    let dialer = samod
        .dial_tcp(
            samod::Url::parse(&format!("tcp://{addr}")).expect("a url"),
            samod::BackoffConfig::default(),
        )
        .expect("samod runs");
    patiently("samod to connect", dialer.established())
        .await
        .expect("samod joined the tandem server");
    let id: samod::DocumentId = made_by_tandem
        .document_id()
        .to_string()
        .parse()
        .expect("samod reads our document id");
    let found = patiently("samod to find tandem's document", samod.find(id))
        .await
        .expect("samod runs")
        .expect("tandem has the document");
    assert_eq!(at_samod(&found, "from").as_deref(), Some("tandem"));

    found.with_document(|d| {
        d.transact(|tx| tx.put(ROOT, "reply", "samod"))
            .expect("a change")
    });
    until(
        "tandem to see samod's change",
        Box::pin(made_by_tandem.changes()),
        || at_tandem(&made_by_tandem, "reply").as_deref() == Some("samod"),
    )
    .await;

    samod.stop().await;
    tandem.shutdown().await;
}
