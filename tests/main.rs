//! Every integration test of this package in one binary: one link and one executable
//! instead of one per file, which keeps a clean build's disk use down.

mod common;
mod doc_references;
mod examples_run;
mod facade_exports;
mod nodefs_directory_shared_with_js;
