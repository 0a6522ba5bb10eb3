//! Every integration test of this package in one binary: one link and one executable
//! instead of one per file, which keeps a clean build's disk use down.

mod conformance;
mod schema;
mod two_repos_one_database;
