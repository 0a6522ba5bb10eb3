//! How one document lives in storage, without doing any IO: loading it from its chunks and
//! deciding what each save writes and removes (docs/protocol.md#loading-saving-and-compaction).
//!
//! The driver (the repo runtime) reads `load_range([doc, "snapshot"])` and
//! `load_range([doc, "incremental"])`, hands the chunks to [`load_document`] (or lets
//! [`read_document_chunks`](crate::storage::read_document_chunks) do the reading), and keeps the returned [`ChunkLedger`]. On each save it asks the ledger for a [`SavePlan`], performs it
//! (write first; remove obsolete chunks only once the write is durable), then records it.

mod load;
mod plan;

pub use load::{load_document, take_in_stored, CorruptChunk, Loaded, LoadedDocument};
pub use plan::{should_compact, ChunkLedger, SavePlan, COMPACTION_FLOOR, QUICK_SAVE_GROWTH};
