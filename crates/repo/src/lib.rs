//! # tandem-repo
//!
//! The async runtime of tandem: a [`Repo`] holds Automerge documents behind [`DocHandle`]s,
//! loads and saves them through a [`StorageAdapter`](tandem_core::StorageAdapter), and runs
//! automerge's sync protocol for each document with each connected peer, over any number of
//! [`NetworkAdapter`](tandem_core::NetworkAdapter)s — wire-compatible with automerge-repo 2.x.
//!
//! ## How it runs
//!
//! Every decision is made by tandem-core's sans-IO actors; this crate is the tokio driver that
//! feeds them and performs what they return:
//!
//! frame → `Message::decode` (transport) → **hub actor**
//! ([`HubActor`](tandem_core::hub::HubActor): who sent it, may it claim that sender, which
//! document) → **document actor** ([`DocumentActor`](tandem_core::document::DocumentActor):
//! share or not, what to answer, what to save and when, which answers wait for a save) →
//! effects → this driver (outboxes, storage, policy calls, handle states and events).
//!
//! - The **hub task** drives the hub actor: it starts one task per document, passes each the
//!   events that concern it, opens and closes connections' IO, and asks the share policy on a
//!   task of its own. It never waits for a document or a policy.
//! - Each **document task** drives its document's actor with the document locked (a large merge
//!   runs on a fork, and the lock is held only to swap it in), runs saves beside it, and
//!   publishes states and events on the handle. One busy document never delays another.
//! - Each connection has a reader (frames → hub; a message holds one of the connection's
//!   in-flight permits until its document takes it in, so a flooding peer waits and nobody else
//!   does) and a writer (outbox → transport). A peer that stops reading is disconnected once its
//!   outbox holds [`MAX_QUEUED_PER_PEER`] messages.
//! - A **handle** shares the document with its task behind a lock; reads and changes are plain
//!   closures, and a change wakes the task (bursts coalesce into one wake-up).
//!
//! Per-event work is proportional to what the event touches: a message costs one lookup and one
//! queue send; a peer connecting costs one event per document it may be offered (none when the
//! share policy offers it nothing). `tandem_core::testing` drives the same actors in one thread
//! on a virtual clock, for deterministic tests and the simulation.

#![warn(missing_docs)]

mod builder;
mod channels;
mod connection_io;
mod context;
mod document_ref;
mod document_task;
mod error;
mod event_fanout;
mod events;
mod gossip;
mod handle;
mod heavy_work;
mod hub;
mod initial;
mod json;
pub mod network;
mod observer;
mod outbox;
mod pending;
pub mod presence;
mod repo;
mod save_task;
mod share_policy;
#[cfg(feature = "test-suite")]
pub mod shared_store_suite;
mod storage_health;
mod timer;

pub use builder::RepoBuilder;
pub use document_ref::DocumentRef;
pub use error::{HandleError, RepoError, Timeout};
pub use events::{
    ChangeOrigin, DocumentChange, EphemeralEvent, FindProgress, RemoteHeadsEvent, RepoEvent,
};
pub use handle::{ChangeMetadata, DocHandle};
pub use observer::{PeerLimit, RepoObserver};
pub use outbox::MAX_QUEUED_PER_PEER;
pub use repo::Repo;
pub use share_policy::{AskOnly, FnSharePolicy, ShareAll, SharePolicy};
pub use tandem_core::sync::HandleState;
pub use tandem_core::Access;
