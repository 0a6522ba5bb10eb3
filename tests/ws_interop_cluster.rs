//! The interop suite (`tests/interop/suite.rs`) against one node of a three-node tandem-server
//! cluster on PostgreSQL: the JS clients cannot tell.

mod common;
#[path = "interop/served.rs"]
mod served;
#[path = "interop/suite.rs"]
mod suite;

/// tandem-server runs as one node of three.
const CLUSTER: bool = true;
