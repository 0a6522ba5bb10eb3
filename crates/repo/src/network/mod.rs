//! Transports that ship with the runtime. The WebSocket adapters live in `tandem-net-ws`.

pub mod memory;
