//! The storage a [`Node`](super::Node) writes to, synchronously.

use std::collections::BTreeMap;

use crate::StorageKey;

/// A key-value store a node reads and writes in place. A save is written with
/// [`put`](Self::put) when it starts and made durable with [`sync`](Self::sync) when the node is
/// told it landed; a store that models crashes may lose what was put and not synced.
pub trait NodeStore {
    /// The value under `key`.
    fn get(&self, key: &StorageKey) -> Option<Vec<u8>>;
    /// Every key under `prefix`, with its value, in key order.
    fn range(&self, prefix: &StorageKey) -> Vec<(StorageKey, Vec<u8>)>;
    /// Writes `bytes` under `key` (not yet durable).
    fn put(&mut self, key: StorageKey, bytes: Vec<u8>);
    /// What this node put so far is durable.
    fn sync(&mut self);
    /// Removes `key` (durably).
    fn remove(&mut self, key: &StorageKey);
}

/// An ordered map: every write is durable at once.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    data: BTreeMap<StorageKey, Vec<u8>>,
}

impl MemoryStore {
    /// Empty.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl NodeStore for MemoryStore {
    fn get(&self, key: &StorageKey) -> Option<Vec<u8>> {
        self.data.get(key).cloned()
    }

    fn range(&self, prefix: &StorageKey) -> Vec<(StorageKey, Vec<u8>)> {
        self.data
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    fn put(&mut self, key: StorageKey, bytes: Vec<u8>) {
        self.data.insert(key, bytes);
    }

    fn sync(&mut self) {}

    fn remove(&mut self, key: &StorageKey) {
        self.data.remove(key);
    }
}

/// One [`MemoryStore`] that several nodes write to, as the nodes of a cluster share one
/// database. Clones share the contents.
#[derive(Debug, Default, Clone)]
pub struct SharedStore {
    store: std::sync::Arc<std::sync::Mutex<MemoryStore>>,
}

impl SharedStore {
    /// Empty.
    pub fn new() -> Self {
        SharedStore::default()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, MemoryStore> {
        // A test that panicked while holding it has failed already.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl NodeStore for SharedStore {
    fn get(&self, key: &StorageKey) -> Option<Vec<u8>> {
        self.store().get(key)
    }

    fn range(&self, prefix: &StorageKey) -> Vec<(StorageKey, Vec<u8>)> {
        self.store().range(prefix)
    }

    fn put(&mut self, key: StorageKey, bytes: Vec<u8>) {
        self.store().put(key, bytes);
    }

    fn sync(&mut self) {}

    fn remove(&mut self, key: &StorageKey) {
        self.store().remove(key);
    }
}
