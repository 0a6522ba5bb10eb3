//! The interop suite (`tests/interop/suite.rs`) against tandem-server alone, on file storage.

mod common;
#[path = "interop/served.rs"]
mod served;
#[path = "interop/suite.rs"]
mod suite;

/// tandem-server runs alone.
const CLUSTER: bool = false;
