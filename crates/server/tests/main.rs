//! Every integration test of this package in one binary: one link and one executable
//! instead of one per file, which keeps a clean build's disk use down.

mod cluster;
mod cluster_processes;
mod common;
mod flags_documented;
mod http_front;
#[path = "../../../tests/common/mod.rs"]
mod js;
mod migrate;
mod postgres;
mod process;
