//! Storage vocabulary: keys, chunk names, the adapter trait, and (feature `test-suite`) the
//! conformance suite every adapter runs.

mod adapter;
#[cfg(feature = "test-suite")]
pub mod conformance;
mod health;
mod key;
pub mod text_key;

pub use adapter::{remove_document, StorageAdapter, StorageError, StoredDocument};
pub use health::{Outage, StorageHealth, StorageReport, SUMMARY_EVERY};
pub use key::{content_hash, heads_hash, ChunkKey, ChunkKind, StorageKey, STORAGE_ADAPTER_ID};
