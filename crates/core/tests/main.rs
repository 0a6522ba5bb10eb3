//! Every integration test of this package in one binary: one link and one executable
//! instead of one per file, which keeps a clean build's disk use down.

mod actors_on_a_virtual_clock;
mod chunk_names;
mod cluster_nodes;
mod codec_robustness;
mod common;
mod document_actor_steps;
mod fuzz_regressions;
mod gossip_steps;
mod ids_and_urls;
mod js_frames;
mod persistence;
mod sync_steps;
mod untrusted;
