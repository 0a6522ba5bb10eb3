//! # tandem-storage-mem
//!
//! [`MemoryStorage`]: a [`StorageAdapter`] that keeps everything in a sorted map in memory.
//! Clones share one store, so several repos in one test can use the same "disk" (as two processes
//! share a directory), and a test can restart a repo on the store it left behind.
//!
//! Everything a `save` wrote is visible to every clone as soon as it returns; nothing survives the
//! process.
//!
//! [`testing`] holds stores that misbehave on purpose (a hung disk, a buggy adapter), for tests
//! of what a repo does then.
//!
//! ```
//! # futures::executor::block_on(async {
//! use tandem_core::{StorageAdapter, StorageKey};
//! use tandem_storage_mem::MemoryStorage;
//!
//! let store = MemoryStorage::new();
//! let key = StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "00ff"]);
//! store.save(&key, b"chunk".to_vec()).await?;
//! let same_disk = store.clone();
//! let found = same_disk.load_range(&StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee"])).await?;
//! assert_eq!(found, vec![(key, b"chunk".to_vec())]);
//! # Ok::<(), tandem_core::StorageError>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]

pub mod testing;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tandem_core::{StorageAdapter, StorageError, StorageKey};

/// An in-memory store; clones share the same contents.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    entries: Arc<Mutex<BTreeMap<StorageKey, Vec<u8>>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every key and value, in key order (for tests that inspect what a repo wrote).
    pub fn snapshot(&self) -> Vec<(StorageKey, Vec<u8>)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<StorageKey, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated (each operation is one
        // map call), so a poisoned lock still guards consistent data.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The entries under `prefix`: contiguous in key order, starting at the prefix itself.
fn entries_under<'a>(
    map: &'a BTreeMap<StorageKey, Vec<u8>>,
    prefix: &'a StorageKey,
) -> impl Iterator<Item = (&'a StorageKey, &'a Vec<u8>)> {
    map.range((Bound::Included(prefix), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(prefix))
}

#[async_trait]
impl StorageAdapter for MemoryStorage {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().get(key).cloned())
    }

    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        self.lock().insert(key.clone(), value);
        Ok(())
    }

    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        Ok(entries_under(&self.lock(), prefix)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
        let mut map = self.lock();
        let doomed: Vec<StorageKey> = entries_under(&map, prefix)
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            map.remove(&key);
        }
        Ok(())
    }
}
