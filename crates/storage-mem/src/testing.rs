//! Storage that misbehaves on purpose, for tests of what a repo does when its disk stalls or
//! its adapter has a bug. Each is a [`MemoryStorage`] behind a [`Misbehaviour`], cheap to clone
//! (clones share the store and the switches).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tandem_core::{DocumentId, StorageAdapter, StorageError, StorageKey};
use tokio::sync::{watch, Semaphore};

use crate::MemoryStorage;

/// What a misbehaving store does before it passes an operation on to its memory store.
#[async_trait]
pub trait Misbehaviour: Send + Sync + 'static {
    /// Before a read (`load` of a key, `load_range` of a prefix).
    fn before_read(&self, _key: &StorageKey) {}
    /// Before a save; an error fails it.
    async fn before_save(&self, _key: &StorageKey) -> Result<(), StorageError> {
        Ok(())
    }
}

/// A [`MemoryStorage`] with a [`Misbehaviour`].
#[derive(Clone, Debug)]
pub struct Misbehaving<M> {
    inner: MemoryStorage,
    behaviour: M,
}

impl<M> Misbehaving<M> {
    /// The store behind the misbehaviour (its clones see what got through).
    pub fn inner(&self) -> &MemoryStorage {
        &self.inner
    }
}

#[async_trait]
impl<M: Misbehaviour> StorageAdapter for Misbehaving<M> {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.behaviour.before_read(key);
        self.inner.load(key).await
    }
    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        self.behaviour.before_save(key).await?;
        self.inner.save(key, value).await
    }
    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.inner.remove(key).await
    }
    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        self.behaviour.before_read(prefix);
        self.inner.load_range(prefix).await
    }
    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
        self.inner.remove_range(prefix).await
    }
}

/// Saves wait while the gate is shut (a hung disk); reads and removes go through.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tandem_core::{StorageAdapter, StorageKey};
/// use tandem_storage_mem::testing::GatedStorage;
///
/// let storage = GatedStorage::open();
/// storage.shut();
/// let key = StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "00"]);
/// let saving = tokio::spawn({
///     let storage = storage.clone();
///     let key = key.clone();
///     async move { storage.save(&key, vec![1]).await }
/// });
/// storage.wait_for_waiting_saves(1).await;
/// storage.let_one_through();
/// saving.await.unwrap().unwrap();
/// assert_eq!(storage.load(&key).await.unwrap(), Some(vec![1]));
/// # });
/// ```
pub type GatedStorage = Misbehaving<Gate>;

/// The gate of a [`GatedStorage`].
#[derive(Clone, Debug)]
pub struct Gate {
    open: Arc<watch::Sender<bool>>,
    waiting: Arc<watch::Sender<usize>>,
    tickets: Arc<Semaphore>,
}

#[async_trait]
impl Misbehaviour for Gate {
    async fn before_save(&self, _key: &StorageKey) -> Result<(), StorageError> {
        self.waiting.send_modify(|n| *n += 1);
        let mut open = self.open.subscribe();
        tokio::select! {
            biased;
            _ = open.wait_for(|open| *open) => {}
            ticket = self.tickets.acquire() => {
                if let Ok(ticket) = ticket {
                    ticket.forget();
                }
            }
        }
        self.waiting.send_modify(|n| *n -= 1);
        Ok(())
    }
}

impl Misbehaving<Gate> {
    /// Empty, with the gate open.
    pub fn open() -> Self {
        Misbehaving {
            inner: MemoryStorage::new(),
            behaviour: Gate {
                open: Arc::new(watch::channel(true).0),
                waiting: Arc::new(watch::channel(0).0),
                tickets: Arc::new(Semaphore::new(0)),
            },
        }
    }

    /// Saves wait from now on.
    pub fn shut(&self) {
        self.behaviour.open.send_replace(false);
    }

    /// Saves go through again, the waiting ones first.
    pub fn reopen(&self) {
        self.behaviour.open.send_replace(true);
    }

    /// One waiting (or the next) save goes through the shut gate.
    pub fn let_one_through(&self) {
        self.behaviour.tickets.add_permits(1);
    }

    /// Waits until at least `count` saves wait at the gate.
    pub async fn wait_for_waiting_saves(&self, count: usize) {
        let mut waiting = self.behaviour.waiting.subscribe();
        // The sender lives in `self`: the wait ends only when the count is reached.
        let _ = waiting.wait_for(|n| *n >= count).await;
    }
}

/// While armed, panics on any read of one document's keys (a storage adapter with a bug).
pub type PanickingStorage = Misbehaving<PanicOnRead>;

/// The bug of a [`PanickingStorage`].
#[derive(Clone, Debug)]
pub struct PanicOnRead {
    document: DocumentId,
    armed: Arc<AtomicBool>,
}

impl Misbehaviour for PanicOnRead {
    fn before_read(&self, key: &StorageKey) {
        let ours = key.parts().first().map(String::as_str) == Some(self.document.as_str());
        if ours && self.armed.load(Ordering::SeqCst) {
            panic!("a storage adapter bug, reading {key:?}");
        }
    }
}

impl Misbehaving<PanicOnRead> {
    /// Over `inner`, for reads of `document`, armed or not.
    pub fn new(inner: MemoryStorage, document: DocumentId, armed: bool) -> Self {
        Misbehaving {
            inner,
            behaviour: PanicOnRead {
                document,
                armed: Arc::new(AtomicBool::new(armed)),
            },
        }
    }

    /// Arms or disarms it.
    pub fn arm(&self, armed: bool) {
        self.behaviour.armed.store(armed, Ordering::SeqCst);
    }
}

/// While full, every save fails as on a disk with no space left; reads and removes go through.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tandem_core::{StorageAdapter, StorageKey};
/// use tandem_storage_mem::testing::FullStorage;
///
/// let storage = FullStorage::with_room();
/// let key = StorageKey::new(["k"]);
/// storage.fill(true);
/// assert!(storage.save(&key, vec![1]).await.is_err());
/// storage.fill(false);
/// storage.save(&key, vec![1]).await.unwrap();
/// assert_eq!(storage.failed_saves(), 1);
/// # });
/// ```
pub type FullStorage = Misbehaving<Full>;

/// The switch of a [`FullStorage`].
#[derive(Clone, Debug, Default)]
pub struct Full {
    full: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
}

#[async_trait]
impl Misbehaviour for Full {
    async fn before_save(&self, key: &StorageKey) -> Result<(), StorageError> {
        if !self.full.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.failed.fetch_add(1, Ordering::SeqCst);
        Err(StorageError::Io {
            key: key.clone(),
            source: std::io::Error::other("No space left on device"),
        })
    }
}

impl Misbehaving<Full> {
    /// Empty, with room.
    pub fn with_room() -> Self {
        Misbehaving {
            inner: MemoryStorage::new(),
            behaviour: Full::default(),
        }
    }

    /// Full (every save fails) or not.
    pub fn fill(&self, full: bool) {
        self.behaviour.full.store(full, Ordering::SeqCst);
    }

    /// Saves failed so far.
    pub fn failed_saves(&self) -> u64 {
        self.behaviour.failed.load(Ordering::SeqCst)
    }
}
