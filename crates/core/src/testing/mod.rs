//! Repos without IO, for tests and simulations: a [`Node`] drives one repo's hub and document
//! actors in one thread over a [`NodeStore`], and a [`Network`] links nodes in memory on a
//! virtual clock.
//!
//! A node does what the tokio driver in tandem-repo does with the actors' effects, synchronously;
//! what happens to messages and saves on the way (delivered at once, held, failed, lost, torn)
//! is up to whoever moves them: the [`Network`] here, or the fault-injecting simulation in
//! tandem-sim.

mod network;
mod node;
mod store;

pub use network::{LinkId, Network, Saves};
pub use node::{AccessFn, AnnounceFn, Node, NodeDocument, NodeEvent, Policy};
pub use store::{MemoryStore, NodeStore, SharedStore};
