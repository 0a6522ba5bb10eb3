//! # tandem-net-ws
//!
//! WebSocket network adapters (client and server) that JS automerge-repo peers accept as their
//! own: `join`/`peer` handshake, keepalive, reconnect with backoff.
//!
//! **Not built yet.** This crate exports nothing until the adapters land (see the project's
//! WebSocket issue). The message codec they will use is ready in `tandem_core::Message`.

#![warn(missing_docs)]
