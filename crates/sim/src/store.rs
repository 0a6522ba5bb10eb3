//! A peer's storage: an ordered map that forgets or tears writes a crash caught before they were
//! durable.
//!
//! Two kinds of writer are modelled. A store one process owns may be written in place (as the JS
//! NodeFS adapter does): a write is visible at once, and a crash before its fsync may drop it or
//! tear a new file, which the loader must then skip. A store two processes share is written the
//! way `tandem-storage-fs` writes (a temporary file, fsync, rename): another process sees a write
//! only once it is complete, so a crash can drop a write in flight but never take away, or tear,
//! what another process has already read. Sharing a directory between processes is only sound
//! with such a writer: a reader of an in-place writer's unfinished file builds on bytes a crash
//! can still take away.

use std::collections::BTreeMap;

use tandem_core::{StorageId, StorageKey};

use crate::rng::SimRng;

/// What a crash did to one write that was not yet durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashDamage {
    /// The write never happened: the key holds what it held before.
    Dropped(StorageKey),
    /// Only the first `kept` bytes reached the disk (an in-place writer's new file).
    Torn {
        /// The key written.
        key: StorageKey,
        /// How many bytes of it reached the disk.
        kept: usize,
    },
    /// The write had reached the disk after all.
    Survived(StorageKey),
}

/// How the processes using a store write to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// In place, visible at once; one process only.
    InPlace,
    /// To a temporary file renamed over the key when complete (its sync): visible to everyone
    /// only then, never torn.
    Atomic,
}

/// A write that a crash can still undo.
#[derive(Debug)]
struct PendingWrite {
    writer: usize,
    key: StorageKey,
    bytes: Vec<u8>,
    /// What the key held before (in-place writes only: they are already in the map).
    before: Option<Vec<u8>>,
}

/// One storage directory. Several peers may share one (two processes on one directory).
#[derive(Debug)]
pub struct SimStore {
    /// The id every peer using this store advertises.
    pub id: StorageId,
    writes: Writes,
    data: BTreeMap<StorageKey, Vec<u8>>,
    pending: Vec<PendingWrite>,
}

impl SimStore {
    /// An empty store written as `writes` says.
    pub fn new(id: StorageId, writes: Writes) -> Self {
        SimStore {
            id,
            writes,
            data: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// Writes `bytes` under `key` for `writer`; a crash of `writer` before [`sync`](Self::sync)
    /// may undo it (or tear it, written in place).
    pub fn put(&mut self, writer: usize, key: StorageKey, bytes: Vec<u8>) {
        let before = match self.writes {
            Writes::InPlace => self.data.insert(key.clone(), bytes.clone()),
            Writes::Atomic => None,
        };
        self.pending.push(PendingWrite {
            writer,
            key,
            bytes,
            before,
        });
    }

    /// Makes `writer`'s writes durable (its fsync, and for atomic writes the rename).
    pub fn sync(&mut self, writer: usize) {
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|w| w.writer == writer);
        self.pending = others;
        if self.writes == Writes::Atomic {
            for write in mine {
                self.data.insert(write.key, write.bytes);
            }
        }
    }

    /// Removes `key` (removal is only ever of chunks that are already merged elsewhere).
    pub fn remove(&mut self, key: &StorageKey) {
        self.data.remove(key);
    }

    /// The value under `key`.
    pub fn get(&self, key: &StorageKey) -> Option<&Vec<u8>> {
        self.data.get(key)
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn range(&self, prefix: &StorageKey) -> Vec<(StorageKey, Vec<u8>)> {
        self.data
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, bytes)| (key.clone(), bytes.clone()))
            .collect()
    }

    /// How many entries the store holds.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// `writer` crashed: each of its writes that was not durable is dropped, torn or kept.
    pub fn crash(&mut self, writer: usize, rng: &mut SimRng) -> Vec<CrashDamage> {
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|w| w.writer == writer);
        self.pending = others;
        match self.writes {
            Writes::Atomic => mine
                .into_iter()
                .map(|write| {
                    // The rename happened before the kill, or it did not.
                    if rng.below(2) == 0 {
                        CrashDamage::Dropped(write.key)
                    } else {
                        self.data.insert(write.key.clone(), write.bytes);
                        CrashDamage::Survived(write.key)
                    }
                })
                .collect(),
            // Newest first, so that dropping restores what an older write left.
            Writes::InPlace => mine
                .into_iter()
                .rev()
                .map(|write| self.crash_in_place(write, rng))
                .collect(),
        }
    }

    fn crash_in_place(&mut self, write: PendingWrite, rng: &mut SimRng) -> CrashDamage {
        // A file that existed is replaced whole or not at all by every writer tandem ships; a
        // new file may be torn.
        let outcomes = if write.before.is_some() { 2 } else { 3 };
        match rng.below(outcomes) {
            0 => {
                match write.before {
                    Some(before) => self.data.insert(write.key.clone(), before),
                    None => self.data.remove(&write.key),
                };
                CrashDamage::Dropped(write.key)
            }
            2 => {
                let kept = match self.data.get_mut(&write.key) {
                    Some(bytes) if !bytes.is_empty() => {
                        let kept = rng.below(bytes.len());
                        bytes.truncate(kept);
                        kept
                    }
                    _ => 0,
                };
                CrashDamage::Torn {
                    key: write.key,
                    kept,
                }
            }
            _ => CrashDamage::Survived(write.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> StorageKey {
        StorageKey::new([name])
    }

    fn store(writes: Writes) -> SimStore {
        SimStore::new(StorageId::from("store".to_string()), writes)
    }

    #[test]
    fn an_atomic_write_is_seen_by_others_only_once_synced() {
        let mut store = store(Writes::Atomic);
        store.put(1, key("snapshot"), b"from 1".to_vec());
        assert_eq!(store.get(&key("snapshot")), None);
        store.sync(1);
        assert_eq!(store.get(&key("snapshot")), Some(&b"from 1".to_vec()));
    }

    #[test]
    fn a_crash_never_takes_away_what_another_writer_could_read() {
        let mut outcomes = Vec::new();
        for seed in 0..32 {
            let mut store = store(Writes::Atomic);
            let mut rng = SimRng::new(seed);
            store.put(0, key("snapshot"), b"same".to_vec());
            store.put(1, key("snapshot"), b"same".to_vec());
            store.sync(0);
            let seen = store.get(&key("snapshot")).cloned();
            let damage = store.crash(1, &mut rng);
            assert_eq!(store.get(&key("snapshot")).cloned(), seen);
            outcomes.push(damage);
        }
        assert!(outcomes.contains(&vec![CrashDamage::Dropped(key("snapshot"))]));
        assert!(outcomes.contains(&vec![CrashDamage::Survived(key("snapshot"))]));
    }

    #[test]
    fn a_crash_can_drop_tear_or_keep_an_in_place_writers_new_file() {
        let outcomes: Vec<Option<Vec<u8>>> = (0..64)
            .map(|seed| {
                let mut store = store(Writes::InPlace);
                let mut rng = SimRng::new(seed);
                store.put(1, key("chunk"), b"from 1".to_vec());
                store.crash(1, &mut rng);
                store.get(&key("chunk")).cloned()
            })
            .collect();
        assert!(outcomes.contains(&None), "never dropped");
        assert!(outcomes.contains(&Some(b"from 1".to_vec())), "never kept");
        assert!(
            outcomes
                .iter()
                .any(|o| o.as_ref().is_some_and(|b| b.len() < 6)),
            "never torn"
        );
    }

    #[test]
    fn a_crash_replaces_an_existing_file_whole_or_not_at_all() {
        for seed in 0..32 {
            let mut store = store(Writes::InPlace);
            let mut rng = SimRng::new(seed);
            store.put(0, key("chunk"), b"old".to_vec());
            store.sync(0);
            store.put(0, key("chunk"), b"new!".to_vec());
            store.crash(0, &mut rng);
            let now = store.get(&key("chunk")).cloned();
            assert!(now == Some(b"old".to_vec()) || now == Some(b"new!".to_vec()));
        }
    }
}
