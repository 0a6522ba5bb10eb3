//! # tandem-repo
//!
//! The async runtime of tandem: the `Repo` actor and its `DocHandle`s, running automerge's sync
//! protocol per document per peer over any number of network adapters and persisting chunks
//! through a storage adapter.
//!
//! **Not built yet.** This crate exists so that the workspace has its final shape; it exports
//! nothing until the runtime lands (see the project's repo issue). Use `tandem-core` for the
//! vocabulary that is ready today.

#![warn(missing_docs)]
