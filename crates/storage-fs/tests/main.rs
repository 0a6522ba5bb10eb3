//! Every integration test of this package in one binary: one link and one executable
//! instead of one per file, which keeps a clean build's disk use down.

mod conformance;
mod crash_safety;
mod nodefs_layout;
mod remove_race;
