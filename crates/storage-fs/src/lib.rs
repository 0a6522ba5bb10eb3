//! # tandem-storage-fs
//!
//! File storage that reads and writes the directory layout of automerge-repo's
//! `NodeFSStorageAdapter`, with atomic, fsynced writes.
//!
//! **Not built yet.** This crate exports nothing until the adapter lands (see the project's file
//! storage issue). `tandem-storage-mem` is the storage available today.

#![warn(missing_docs)]
