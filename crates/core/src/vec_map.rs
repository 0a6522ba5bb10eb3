//! A map kept as a vector sorted by key: for the few entries a document holds per peer (one or
//! two, as a rule), one small allocation where a `BTreeMap` allocates a node with room for 11
//! entries and a `HashMap` a table with room for 3. Iteration is in key order, as a
//! `BTreeMap`'s, so every step of a seeded simulation replays the same.

/// Entries sorted by key, at most one per key.
#[derive(Debug, Clone)]
pub(crate) struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    fn find(&self, key: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_ok()
    }

    /// The value `key` had, if any.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.find(key).ok()?;
        let (_, value) = self.0.remove(i);
        if self.0.is_empty() {
            // A vector keeps its room once emptied: give it back.
            self.0 = Vec::new();
        }
        Some(value)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;

    #[test]
    fn behaves_as_an_ordered_map() {
        let mut map = VecMap::default();
        assert_eq!(map.insert("b", 2), None);
        assert_eq!(map.insert("a", 1), None);
        assert_eq!(map.insert("c", 3), None);
        assert_eq!(map.insert("b", 20), Some(2));
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(map.get(&"b"), Some(&20));
        *map.get_mut(&"a").unwrap() += 10;
        assert_eq!(map.values().copied().collect::<Vec<_>>(), [11, 20, 3]);
        assert!(map.contains_key(&"c"));
        assert_eq!(map.remove(&"c"), Some(3));
        assert_eq!(map.remove(&"c"), None);
        for (_, v) in map.iter_mut() {
            *v = 0;
        }
        for v in map.values_mut() {
            *v += 1;
        }
        assert_eq!(map.values().copied().collect::<Vec<_>>(), [1, 1]);
        map.remove(&"a");
        map.remove(&"b");
        assert_eq!(map.0.capacity(), 0, "an emptied map keeps no room");
    }
}
