//! Deterministic simulation of several tandem peers under faults.
//!
//! Each simulated peer is a [`Node`]: tandem-core's real hub and document actors, driven as
//! tandem-repo's tasks drive them, over an in-memory store that a crash can tear. The simulation
//! has no routing, sharing, relaying or saving rule of its own: it moves the nodes' messages and
//! lands their saves, with faults. One thread, a virtual clock (ticks of 10 ms) and one seeded generator decide
//! everything: the same seed replays the same run, event for event.
//!
//! A run draws its shape from the seed (3–5 peers, maybe two sharing a store and maybe those
//! two linked as nodes of a cluster, fault rates),
//! takes a few hundred random steps (create, find, edit maps/lists/text/counters, broadcast,
//! delete, share-policy changes, flushes, evictions; message loss, duplication, reordering and
//! delay, link cuts and heals, kill -9 and restart), then heals everything, runs to quiescence
//! and checks:
//! - every peer holding a document in memory has the same heads and the same content;
//! - no document is left `Loading` or `Requesting`;
//! - every change a store acknowledged (a save made durable) is still loadable from it, after
//!   every crash and at the end;
//! - no message storm, no ephemeral message delivered twice or back to its sender, no sync
//!   message from an honest peer refused.
//!
//! [`Node`]: tandem_core::testing::Node

#![warn(missing_docs)]

mod peer;
mod rng;
mod store;
mod world;

pub use peer::{render, PeerViolation, SimPeer};
pub use rng::SimRng;
pub use store::{CrashDamage, SimStore, Writes};
pub use world::{Config, Failure, Stats, World, MAX_IN_FLIGHT};

/// Runs seed `seed`: `Ok` with what the run did, or the broken invariant with its trace.
pub fn run_seed(seed: u64) -> Result<Stats, Failure> {
    World::new(seed).run()
}
