//! Every integration test of this package in one binary: one link and one executable
//! instead of one per file, which keeps a clean build's disk use down.

mod common;
mod durable;
mod events;
mod eviction;
mod gossip;
mod handle_api;
mod merge_on_a_fork;
mod network_conformance;
mod persistence;
mod presence;
mod share_policy;
mod storage_outage;
mod topologies;
mod two_peers;
mod unavailable;
mod worker_panic;
