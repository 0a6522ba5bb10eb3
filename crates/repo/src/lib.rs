//! # tandem-repo
//!
//! The async runtime of tandem: a [`Repo`] holds Automerge documents behind [`DocHandle`]s,
//! loads and saves them through a [`StorageAdapter`](tandem_core::StorageAdapter), and runs
//! automerge's sync protocol for each document with each connected peer, over any number of
//! [`NetworkAdapter`](tandem_core::NetworkAdapter)s — wire-compatible with automerge-repo 2.x.
//!
//! ## How it runs
//!
//! - The **hub** task owns connections and the table of documents. It routes each incoming
//!   message to one document and never does document work itself.
//! - Each document has a **worker** task driving a sans-IO
//!   [`DocumentSync`](tandem_core::sync::DocumentSync): it applies sync messages, answers,
//!   forwards changes to the other peers at once, and saves on a debounce. One busy document
//!   never delays another.
//! - Each connection has a reader (frames → hub, bounded: a slow repo pushes back on its peers)
//!   and a writer (outbox → transport). Workers never wait on a peer; a peer that stops reading
//!   is disconnected once its outbox holds [`MAX_QUEUED_PER_PEER`] messages.
//! - A **handle** shares the document with its worker behind a lock; reads and changes are plain
//!   closures, and a change wakes the worker (bursts coalesce into one wake-up).
//!
//! Per-event work is proportional to what the event touches: a message costs one lookup and one
//! queue send; a peer connecting costs one event per document it may be offered (none when the
//! share policy offers it nothing).

#![warn(missing_docs)]

mod builder;
mod channels;
mod connection_io;
mod context;
mod document_ref;
mod document_worker;
mod error;
mod event_fanout;
mod events;
mod gossip;
mod handle;
mod heavy_work;
mod hub;
mod initial;
pub mod network;
mod outbox;
mod pending;
mod repo;
mod save_task;
mod share_policy;

pub use builder::RepoBuilder;
pub use document_ref::DocumentRef;
pub use error::{HandleError, RepoError};
pub use events::{ChangeOrigin, DocumentChange, EphemeralEvent, RemoteHeadsEvent};
pub use handle::{ChangeMetadata, DocHandle};
pub use outbox::MAX_QUEUED_PER_PEER;
pub use repo::Repo;
pub use share_policy::{AskOnly, FnSharePolicy, ShareAll, SharePolicy};
pub use tandem_core::sync::HandleState;
