//! How one document lives in storage, without doing any IO: loading it from its chunks and
//! deciding what each save writes and removes (docs/protocol.md#loading-saving-and-compaction).
//!
//! The driver (the repo runtime) reads the document's chunks with
//! [`StorageAdapter::load_document`](crate::storage::StorageAdapter::load_document), hands them
//! to [`load_document`], and keeps the returned [`ChunkLedger`]. On each save it asks the ledger for a [`SavePlan`], performs it
//! (write first; remove obsolete chunks only once the write is durable), then records it.

mod load;
mod plan;

pub use load::{load_document, take_in_stored, CorruptChunk, Loaded, LoadedDocument};
pub use plan::{should_compact, ChunkLedger, SavePlan, COMPACTION_FLOOR, QUICK_SAVE_GROWTH};
