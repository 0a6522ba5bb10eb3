//! MemoryStorage keeps the StorageAdapter contract, and the contract's suite notices adapters that
//! break it.

use async_trait::async_trait;
use tandem_core::storage::conformance;
use tandem_core::{StorageAdapter, StorageError, StorageKey};
use tandem_storage_mem::MemoryStorage;

#[tokio::test]
async fn memory_storage_passes_the_conformance_suite() {
    conformance::run_all(MemoryStorage::new).await;
}

/// The broken behaviours the suite must catch.
#[derive(Clone, Copy)]
enum Bug {
    /// Prefixes matched as joined strings, as the JS NodeFS cache does: `["doc1"]` covers `["doc12"]`.
    StringPrefix,
    /// Empty values dropped from ranges.
    DropsEmptyValues,
    /// Saves that keep the old value when the new one is shorter.
    KeepsLongerValue,
}

struct Buggy(MemoryStorage, Bug);

#[async_trait]
impl StorageAdapter for Buggy {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.load(key).await
    }

    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        if let (Bug::KeepsLongerValue, Some(old)) = (self.1, self.0.load(key).await?) {
            if old.len() > value.len() {
                return Ok(());
            }
        }
        self.0.save(key, value).await
    }

    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.0.remove(key).await
    }

    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let all = self
            .0
            .load_range(&StorageKey::new(Vec::<String>::new()))
            .await?;
        Ok(all
            .into_iter()
            .filter(|(k, v)| match self.1 {
                Bug::StringPrefix => k.parts().join("/").starts_with(&prefix.parts().join("/")),
                Bug::DropsEmptyValues => k.starts_with(prefix) && !v.is_empty(),
                Bug::KeepsLongerValue => k.starts_with(prefix),
            })
            .collect())
    }

    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
        self.0.remove_range(prefix).await
    }
}

#[tokio::test]
async fn the_suite_fails_adapters_that_break_the_contract() {
    let cases = [
        (Bug::StringPrefix, "must not cover"),
        (Bug::DropsEmptyValues, "ranges include empty values"),
        (Bug::KeepsLongerValue, "a shorter value replaces wholly"),
    ];
    for (bug, rule) in cases {
        let run = tokio::spawn(conformance::run_all(move || {
            Buggy(MemoryStorage::new(), bug)
        }));
        let panic = run
            .await
            .expect_err("the suite passed a buggy adapter")
            .into_panic();
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(
            message.contains(rule),
            "expected the rule {rule:?} to fail, got: {message}"
        );
    }
}
