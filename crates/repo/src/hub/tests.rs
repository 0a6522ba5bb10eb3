use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::ROOT;
use tandem_core::{ChunkKind, StorageAdapter};
use tandem_storage_mem::MemoryStorage;

use std::sync::Arc;

use automerge::ReadDoc;
use tandem_core::{StorageError, StorageKey};

use super::Command;
use crate::network::memory;
use crate::{AskOnly, Repo};

const PATIENCE: Duration = Duration::from_secs(20);

/// A server built from `server` and a plain client, linked in memory and connected.
async fn server_and_client(server: crate::RepoBuilder) -> (Repo, Repo, memory::Link) {
    let (left, right, link) = memory::pair();
    let server = server.network(left).start().await.unwrap();
    let client = Repo::builder().network(right).start().await.unwrap();
    client
        .wait_for_peer(server.peer_id(), PATIENCE)
        .await
        .unwrap();
    (server, client, link)
}

/// How many (connection, document) introductions `repo`'s hub keeps.
async fn introductions(repo: &Repo) -> usize {
    repo.command(|reply| Command::Introductions { reply })
        .await
        .unwrap()
}

/// A server that offers nothing (so it keeps introductions per connection) unloads the
/// documents a client brought once they go idle, and forgets which connection introduced
/// them: a client connected for days does not make the server keep every id it touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unloaded_documents_are_no_longer_introduced_to_anyone() {
    let storage = MemoryStorage::new();
    let (server, client, _link) = server_and_client(
        Repo::builder()
            .share_policy(AskOnly)
            .storage(storage.clone())
            .save_debounce(Duration::from_millis(5))
            .idle_timeout(Duration::from_millis(100)),
    )
    .await;

    let mut held = Vec::new();
    for i in 0..50 {
        let (doc, ()) = client
            .create_with(|tx| tx.put(ROOT, "n", i).unwrap())
            .await
            .unwrap();
        held.push(doc);
    }
    tokio::time::timeout(PATIENCE, async {
        // Every document reached the server's storage...
        for doc in &held {
            let prefix = ChunkKind::Snapshot.prefix(doc.document_id());
            while storage.load_range(&prefix).await.unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await; // polling, not a guess
            }
        }
        // ...and left its memory, introductions and all.
        while !server.documents().await.unwrap().is_empty() || introductions(&server).await > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await; // polling, not a guess
        }
    })
    .await
    .unwrap_or_else(|_| panic!("introductions kept after unloading"));
    client.shutdown().await;
    server.shutdown().await;
}

/// A peer offered everything when it connected is known to every worker, and the hub keeps
/// no introductions for it. When the policy withdraws that (`share_policy_changed`), the hub
/// must count it as introduced everywhere, or its departure reaches no worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_no_longer_offered_everything_is_still_told_to_leave_everywhere() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let offered = Arc::new(AtomicBool::new(true));
    let policy = {
        let offered = offered.clone();
        crate::FnSharePolicy::new(move |_, _| offered.load(Ordering::SeqCst), |_, _| true)
    };
    let (server, client, link) = server_and_client(Repo::builder().share_policy(policy)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(server.create_empty().await.unwrap());
    }
    assert_eq!(
        introductions(&server).await,
        0,
        "offered everything: nothing kept"
    );

    offered.store(false, Ordering::SeqCst);
    server.share_policy_changed().await.unwrap();
    assert_eq!(introductions(&server).await, held.len());

    link.cut();
    tokio::time::timeout(PATIENCE, async {
        while introductions(&server).await > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await; // polling, not a guess
        }
    })
    .await
    .expect("the departure was not recorded");
    client.shutdown().await;
    server.shutdown().await;
}

/// Memory storage whose saves wait while its gate is shut.
#[derive(Clone)]
struct GatedStorage {
    inner: MemoryStorage,
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl GatedStorage {
    /// Empty, with the gate open.
    fn with_gate_open() -> Self {
        GatedStorage {
            inner: MemoryStorage::new(),
            open: Arc::new(tokio::sync::watch::channel(true).0),
        }
    }
}

#[async_trait::async_trait]
impl StorageAdapter for GatedStorage {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load(key).await
    }
    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        self.inner.save(key, value).await
    }
    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.inner.remove(key).await
    }
    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        self.inner.load_range(prefix).await
    }
    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
        self.inner.remove_range(prefix).await
    }
}

/// A save that never ends (a hung disk) makes every answer to the document's writers wait
/// for it. Past a bound (small in unit tests) the writers are cut off, which bounds the
/// server's memory; what they wrote stays, and a reader of another document goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_waiting_on_a_save_that_never_ends_are_cut_off_past_a_bound() {
    let storage = GatedStorage::with_gate_open();
    let (server, writer, _link) = server_and_client(
        Repo::builder()
            .storage(storage.clone())
            .durable_acknowledgement(true)
            .max_held(256)
            .save_debounce(Duration::from_millis(1)),
    )
    .await;
    let (left, right, _reader_link) = memory::pair();
    server.add_network(left).await.unwrap();
    let reader = Repo::builder().network(right).start().await.unwrap();
    reader
        .wait_for_peer(server.peer_id(), PATIENCE)
        .await
        .unwrap();
    let news = server.create_empty().await.unwrap();
    let news_at_reader = reader.find(news.url()).await.unwrap();
    let (written, ()) = writer
        .create_with(|tx| tx.put(ROOT, "n", 0).unwrap())
        .await
        .unwrap();
    let at_server = server.find(written.url()).await.unwrap();
    server.flush().await.unwrap();

    storage.open.send_replace(false);
    let mut peers = writer.peer_changes();
    let mut changes = Box::pin(at_server.changes());
    let mut last_received = 0;
    for n in 1..=2_000 {
        written.change(|tx| tx.put(ROOT, "n", n).unwrap()).unwrap();
        let target = written.heads().unwrap();
        let outcome = tokio::time::timeout(PATIENCE, async {
            tokio::select! {
                _ = async {
                    while at_server.heads().unwrap() != target {
                        futures::StreamExt::next(&mut changes).await;
                    }
                } => true,
                _ = peers.wait_for(|peers| !peers.contains_key(server.peer_id())) => false,
            }
        })
        .await
        .expect("the server neither took the change nor cut the writer off");
        if !outcome {
            break;
        }
        last_received = n;
    }
    assert!(
        !writer.peers().contains_key(server.peer_id()),
        "the writer was never cut off"
    );
    assert!(last_received > 200, "cut off after {last_received} changes");
    let at_server_n = at_server
        .with_doc(|doc| doc.get(ROOT, "n").unwrap().unwrap().0.as_i64())
        .unwrap();
    assert!(at_server_n >= Some(last_received), "{at_server_n:?}");

    // The reader of another document is still served.
    news.change(|tx| tx.put(ROOT, "still", true).unwrap())
        .unwrap();
    let heads = news.heads().unwrap();
    let mut news_changes = Box::pin(news_at_reader.changes());
    tokio::time::timeout(PATIENCE, async {
        while news_at_reader.heads().unwrap() != heads {
            futures::StreamExt::next(&mut news_changes).await;
        }
    })
    .await
    .expect("the reader no longer hears from the server");

    // Once the disk answers, what the writer sent is saved.
    storage.open.send_replace(true);
    server.flush().await.unwrap();
    let loaded = tandem_core::persistence::load_from_storage(&storage.inner, written.document_id())
        .await
        .unwrap();
    let stored_n = loaded
        .document
        .unwrap()
        .get(ROOT, "n")
        .unwrap()
        .unwrap()
        .0
        .as_i64();
    assert_eq!(stored_n, at_server_n);
    reader.shutdown().await;
    writer.shutdown().await;
    server.shutdown().await;
}
