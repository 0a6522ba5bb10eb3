//! Storage that fails (a full disk): saves of every document retry under one backoff, the
//! observer hears the outage start and end once, and saving resumes by itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::common::PATIENCE;
use async_trait::async_trait;
use automerge::{transaction::Transactable, ROOT};
use tandem_core::{ChunkKey, DocumentId, StorageAdapter, StorageError, StorageKey};
use tandem_repo::{Repo, RepoObserver};
use tandem_storage_mem::testing::FullStorage;
use tokio::sync::watch;

/// What the observer heard of the store: `Some(error)` when saves began to fail, `None` when
/// they worked again.
#[derive(Default)]
struct Heard(Mutex<Vec<Option<String>>>, watch::Sender<usize>);

impl RepoObserver for Heard {
    fn storage_failing(&self, error: Option<&str>) {
        let mut heard = self.0.lock().unwrap();
        heard.push(error.map(str::to_owned));
        self.1.send_replace(heard.len());
    }
}

/// A [`FullStorage`] that says which documents have a chunk stored, and how many saves failed.
#[derive(Clone)]
struct Watched {
    inner: FullStorage,
    saved: Arc<watch::Sender<HashSet<DocumentId>>>,
    failed: Arc<watch::Sender<u64>>,
}

#[async_trait]
impl StorageAdapter for Watched {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load(key).await
    }
    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        let saved = self.inner.save(key, value).await;
        match (&saved, ChunkKey::parse(key)) {
            (Ok(()), Some(chunk)) => {
                self.saved.send_modify(|saved| {
                    saved.insert(chunk.document_id);
                });
            }
            (Ok(()), None) => {}
            (Err(_), _) => self.failed.send_modify(|n| *n += 1),
        }
        saved
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

/// 200 documents changed while the disk is full: every save fails and is retried (not at once:
/// under the store's backoff) until there is room again; then each document is saved without
/// anyone asking, and the observer heard exactly one outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_wait_out_a_full_disk_and_resume_by_themselves() {
    const DOCUMENTS: usize = 200;
    let storage = Watched {
        inner: FullStorage::with_room(),
        saved: Arc::new(watch::channel(HashSet::new()).0),
        failed: Arc::new(watch::channel(0).0),
    };
    let heard = Arc::new(Heard::default());
    let repo = Repo::builder()
        .shared_storage(Arc::new(storage.clone()))
        .shared_observer(heard.clone())
        .start()
        .await
        .unwrap();
    storage.inner.fill(true);
    let mut ids = HashSet::new();
    for n in 0..DOCUMENTS {
        let handle = repo.create_empty().await.unwrap();
        handle
            .change(|tx| tx.put(ROOT, "n", n as i64))
            .unwrap()
            .unwrap();
        ids.insert(handle.document_id().clone());
    }
    // Every document fails, and tries again, at least once.
    let mut failed = storage.failed.subscribe();
    tokio::time::timeout(PATIENCE, failed.wait_for(|n| *n >= 2 * DOCUMENTS as u64))
        .await
        .expect("saves were not retried")
        .unwrap();
    assert!(storage.saved.borrow().is_empty());

    storage.inner.fill(false);
    let mut saved = storage.saved.subscribe();
    tokio::time::timeout(PATIENCE, saved.wait_for(|saved| ids.is_subset(saved)))
        .await
        .expect("saving did not resume by itself")
        .unwrap();
    let mut outages = heard.1.subscribe();
    tokio::time::timeout(PATIENCE, outages.wait_for(|n| *n >= 2))
        .await
        .expect("the observer never heard the end")
        .unwrap();
    let heard = heard.0.lock().unwrap().clone();
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert!(heard[0]
        .as_deref()
        .is_some_and(|error| error.contains("No space left")));
    assert_eq!(heard[1], None);
    repo.shutdown().await;
}

/// A delete that storage cannot carry out (a full disk refuses even the tombstone) says so,
/// and leaves the document whole; tried again with room, it goes for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_storage_refuses_fails_and_loses_nothing() {
    let storage = FullStorage::with_room();
    let repo = Repo::builder()
        .shared_storage(Arc::new(storage.clone()))
        .tombstones(true)
        .start()
        .await
        .unwrap();
    let handle = repo.create_empty().await.unwrap();
    handle
        .change(|tx| tx.put(ROOT, "kept", true))
        .unwrap()
        .unwrap();
    repo.flush().await.unwrap();
    let id = handle.document_id().clone();
    let heads = handle.heads().unwrap();

    storage.fill(true);
    assert!(repo.delete(&id).await.is_err());
    storage.fill(false);
    let again = repo.find(&id).await.unwrap();
    assert_eq!(again.heads().unwrap(), heads);
    repo.delete(&id).await.unwrap();
    assert!(matches!(
        repo.find(&id).await,
        Err(tandem_repo::RepoError::Deleted(_))
    ));
    repo.shutdown().await;
}
