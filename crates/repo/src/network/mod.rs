//! Transports that ship with the runtime (the WebSocket adapters live in `tandem-net-ws`), and
//! the id a repo gives each transport it runs.

pub mod memory;

/// A transport a repo runs, as [`Repo::add_network`](crate::Repo::add_network) returns it and
/// [`Repo::remove_network`](crate::Repo::remove_network) takes it. Those given to the builder
/// are listed by [`Repo::networks`](crate::Repo::networks), in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub(crate) u64);

impl std::fmt::Display for NetworkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "network-{}", self.0)
    }
}
