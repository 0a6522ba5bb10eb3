//! A peer's storage: an ordered map that forgets or tears writes a crash caught before they were
//! durable.

use std::collections::BTreeMap;

use tandem_core::{StorageId, StorageKey};

use crate::rng::SimRng;

/// What a crash did to one write that was not yet durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashDamage {
    /// The write never happened: the key holds what it held before.
    Dropped(StorageKey),
    /// Only the first `kept` bytes reached the disk (a writer without atomic renames, like the
    /// JS NodeFS adapter).
    Torn { key: StorageKey, kept: usize },
    /// The write had reached the disk after all.
    Survived(StorageKey),
    /// Another writer replaced the key (or removed it) after this write: what the key holds is
    /// that later operation's, which a crash of this writer cannot undo.
    Superseded(StorageKey),
}

/// A write that a crash can still undo.
#[derive(Debug)]
struct PendingWrite {
    writer: usize,
    key: StorageKey,
    before: Option<Vec<u8>>,
    /// Another writer has since renamed its own file over the key, or removed it. (Two
    /// processes that save the same snapshot write the same key; the first to crash must not
    /// take away what the other made durable. Seed 6,746 did, before this.)
    superseded: bool,
}

/// One storage directory. Several peers may share one (two processes on one directory).
#[derive(Debug)]
pub struct SimStore {
    /// The id every peer using this store advertises.
    pub id: StorageId,
    data: BTreeMap<StorageKey, Vec<u8>>,
    pending: Vec<PendingWrite>,
}

impl SimStore {
    /// An empty store.
    pub fn new(id: StorageId) -> Self {
        SimStore {
            id,
            data: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// Writes `bytes` under `key` for `writer`; a crash of `writer` before [`sync`](Self::sync)
    /// may undo or tear it.
    pub fn put(&mut self, writer: usize, key: StorageKey, bytes: Vec<u8>) {
        self.supersede(&key, Some(writer));
        let before = self.data.insert(key.clone(), bytes);
        self.pending.push(PendingWrite {
            writer,
            key,
            before,
            superseded: false,
        });
    }

    /// Marks the pending writes of `key` by anyone but `by` as replaced.
    fn supersede(&mut self, key: &StorageKey, by: Option<usize>) {
        for write in &mut self.pending {
            if write.key == *key && Some(write.writer) != by {
                write.superseded = true;
            }
        }
    }

    /// Makes `writer`'s writes durable (its fsync).
    pub fn sync(&mut self, writer: usize) {
        self.pending.retain(|w| w.writer != writer);
    }

    /// Removes `key` (removal is only ever of chunks that are already merged elsewhere).
    pub fn remove(&mut self, key: &StorageKey) {
        self.supersede(key, None);
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

    /// `writer` crashed: each of its writes that was not durable is dropped, torn or kept, newest
    /// first (so that dropping restores what an older write left).
    pub fn crash(&mut self, writer: usize, rng: &mut SimRng) -> Vec<CrashDamage> {
        let mut damage = Vec::new();
        let mut keep = Vec::new();
        for write in std::mem::take(&mut self.pending).into_iter().rev() {
            if write.writer != writer {
                keep.push(write);
                continue;
            }
            if write.superseded {
                damage.push(CrashDamage::Superseded(write.key));
                continue;
            }
            // Replacing a file is atomic (tandem writes a temporary file and renames it): the
            // old or the new content, never a mix. A new file may be torn, as a writer without
            // renames (NodeFS) would leave it; the loader must skip it.
            let outcomes = if write.before.is_some() { 2 } else { 3 };
            match rng.below(outcomes) {
                0 => {
                    match write.before {
                        Some(before) => self.data.insert(write.key.clone(), before),
                        None => self.data.remove(&write.key),
                    };
                    damage.push(CrashDamage::Dropped(write.key));
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
                    damage.push(CrashDamage::Torn {
                        key: write.key,
                        kept,
                    });
                }
                _ => damage.push(CrashDamage::Survived(write.key)),
            }
        }
        keep.reverse();
        self.pending = keep;
        damage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> StorageKey {
        StorageKey::new([name])
    }

    #[test]
    fn a_crash_does_not_undo_what_another_writer_made_durable_under_the_same_key() {
        for seed in 0..32 {
            let mut store = SimStore::new(StorageId::from("store".to_string()));
            let mut rng = SimRng::new(seed);
            store.put(1, key("snapshot"), b"from 1".to_vec());
            store.put(0, key("snapshot"), b"from 0".to_vec());
            store.sync(0);
            let damage = store.crash(1, &mut rng);
            assert_eq!(damage, vec![CrashDamage::Superseded(key("snapshot"))]);
            assert_eq!(store.get(&key("snapshot")), Some(&b"from 0".to_vec()));
        }
    }

    #[test]
    fn a_crash_can_drop_a_writers_own_unsynced_write() {
        let outcomes: Vec<Option<Vec<u8>>> = (0..32)
            .map(|seed| {
                let mut store = SimStore::new(StorageId::from("store".to_string()));
                let mut rng = SimRng::new(seed);
                store.put(1, key("chunk"), b"from 1".to_vec());
                store.crash(1, &mut rng);
                store.get(&key("chunk")).cloned()
            })
            .collect();
        assert!(outcomes.contains(&None), "never dropped");
        assert!(outcomes.contains(&Some(b"from 1".to_vec())), "never kept");
    }
}
