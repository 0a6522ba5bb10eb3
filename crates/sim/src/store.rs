//! A peer's storage: an ordered map that forgets or tears writes a crash caught before they were
//! durable.

use std::collections::{BTreeMap, HashSet};

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
    /// This write's number (for `superseded_by`).
    serial: u64,
    /// The write of another writer that has since renamed its own file over the key
    /// ([`REMOVED`] for a removal). Two processes that save the same snapshot write the same
    /// key: the first to crash must not take away what the other made durable (seed 6,746 did,
    /// before this). Cleared if a crash undoes that later write: the key is this write's again.
    superseded_by: Option<u64>,
}

/// `superseded_by` of a write whose key was removed since.
const REMOVED: u64 = u64::MAX;

/// One storage directory. Several peers may share one (two processes on one directory).
#[derive(Debug)]
pub struct SimStore {
    /// The id every peer using this store advertises.
    pub id: StorageId,
    data: BTreeMap<StorageKey, Vec<u8>>,
    pending: Vec<PendingWrite>,
    writes: u64,
}

impl SimStore {
    /// An empty store.
    pub fn new(id: StorageId) -> Self {
        SimStore {
            id,
            data: BTreeMap::new(),
            pending: Vec::new(),
            writes: 0,
        }
    }

    /// Writes `bytes` under `key` for `writer`; a crash of `writer` before [`sync`](Self::sync)
    /// may undo or tear it.
    pub fn put(&mut self, writer: usize, key: StorageKey, bytes: Vec<u8>) {
        self.writes += 1;
        let serial = self.writes;
        self.supersede(&key, Some(writer), serial);
        let before = self.data.insert(key.clone(), bytes);
        self.pending.push(PendingWrite {
            writer,
            key,
            before,
            serial,
            superseded_by: None,
        });
    }

    /// Marks the live pending writes of `key` by anyone but `writer` as replaced by `serial`.
    fn supersede(&mut self, key: &StorageKey, writer: Option<usize>, serial: u64) {
        for write in &mut self.pending {
            if write.key == *key && Some(write.writer) != writer && write.superseded_by.is_none() {
                write.superseded_by = Some(serial);
            }
        }
    }

    /// Makes `writer`'s writes durable (its fsync).
    pub fn sync(&mut self, writer: usize) {
        self.pending.retain(|w| w.writer != writer);
    }

    /// Removes `key` (removal is only ever of chunks that are already merged elsewhere).
    pub fn remove(&mut self, key: &StorageKey) {
        self.supersede(key, None, REMOVED);
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
        // Writes this crash undid: a write they had superseded holds its key again. A write is
        // only ever superseded by a newer one, which this newest-first walk has seen already.
        let mut undone = HashSet::new();
        for mut write in std::mem::take(&mut self.pending).into_iter().rev() {
            if write
                .superseded_by
                .is_some_and(|serial| undone.contains(&serial))
            {
                write.superseded_by = None;
            }
            if write.writer != writer {
                keep.push(write);
                continue;
            }
            if write.superseded_by.is_some() {
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
                    undone.insert(write.serial);
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
    fn a_write_superseded_by_one_a_crash_undid_is_live_again() {
        let mut outcomes = HashSet::new();
        for seed in 0..64 {
            let mut store = SimStore::new(StorageId::from("store".to_string()));
            let mut rng = SimRng::new(seed);
            store.put(1, key("snapshot"), b"from 1".to_vec());
            store.put(0, key("snapshot"), b"from 0".to_vec());
            let undone = store.crash(0, &mut rng) == vec![CrashDamage::Dropped(key("snapshot"))];
            let damage = store.crash(1, &mut rng);
            if undone {
                // Writer 1's write holds the key again, and its crash may take it.
                assert_ne!(damage, vec![CrashDamage::Superseded(key("snapshot"))]);
                outcomes.insert(store.get(&key("snapshot")).cloned());
            }
        }
        assert!(
            outcomes.contains(&None),
            "writer 1's own write was never dropped"
        );
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
