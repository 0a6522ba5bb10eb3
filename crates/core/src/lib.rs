//! # tandem-core
//!
//! The vocabulary of tandem and every decision a repo makes, with no IO and no async runtime.
//!
//! A repo is two kinds of sans-IO actor: the [`hub`] actor (connections, who may claim what,
//! which document a message is for, which peers each document hears of) and one [`document`]
//! actor per document in memory (whom to sync with, what to send, what to save and when, which
//! answers wait for a save, when a find gives up, when the document may leave memory). Each
//! takes `(now, event)` and returns effects as data; ids tie a question to its answer. A driver
//! performs the effects: tandem-repo with tokio, [`testing`] in one thread on a virtual clock.
//!
//! frame → [`Message::decode`] → hub actor → document actor → effects → driver.
//!
//! - **Identities**: [`DocumentId`] (Base58Check of random bytes), [`AutomergeUrl`] and
//!   [`UrlHead`], [`PeerId`], [`StorageId`], [`SessionId`], [`PeerMetadata`].
//! - **Wire messages**: [`Message`] and its CBOR codec, byte-compatible with
//!   `@automerge/automerge-repo` 2.x ([`Message::decode`], [`Message::encode`]).
//! - **Storage vocabulary**: [`StorageKey`], the chunk keys of a document ([`ChunkKey`]) and their
//!   naming hashes, and the [`StorageAdapter`] trait (with a conformance suite behind the
//!   `test-suite` feature, as for networks).
//! - **Persistence decisions** ([`persistence`]): loading a document from its chunks and deciding
//!   what each save writes and removes, with no IO.
//! - **Transports**: the [`NetworkAdapter`] trait and the [`Connection`] it yields.
//! - **Actors** ([`hub`], [`document`]) and their single-threaded driver ([`testing`]).
//! - **Foreign bytes** ([`untrusted`]): a peer's changes and imports are applied to a copy of the
//!   document and checked, so that what automerge 0.12 panics on or cannot write back leaves the
//!   document as it was; stored chunks load inside the same guard.
//!
//! ```
//! use tandem_core::{AutomergeUrl, Message};
//!
//! // A `doc-unavailable` frame exactly as a JS sync server sends it.
//! let frame = hex::decode(concat!(
//!     "b9000464747970656f646f632d756e617661696c61626c656a646f63756d656e744964781c326b47",
//!     "525572583877324b6a6148433378656b316b696a535665656568746172676574496468636c69656e",
//!     "742d626873656e64657249646b7365727665722d70656572",
//! ))?;
//! let message = Message::decode(&frame)?;
//! assert_eq!(message.type_name(), "doc-unavailable");
//! assert_eq!(message.sender_id().as_str(), "server-peer");
//!
//! let url: AutomergeUrl = "automerge:2kGRUrX8w2KjaHC3xek1kijSVeee".parse()?;
//! assert_eq!(message.document_id(), Some(url.document_id()));
//! // Re-encoding gives back the very bytes cbor-x wrote.
//! assert_eq!(message.encode(), frame);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod access;
mod base58check;
pub mod document;
mod document_id;
mod grant;
pub mod hub;
pub mod message;
pub mod network;
mod peer;
pub mod persistence;
pub mod presence;
pub mod storage;
pub mod sync;
pub mod testing;
pub mod untrusted;
mod url;
mod vec_map;

pub use access::Access;
pub use document_id::{DocumentId, InvalidDocumentId};
pub use grant::Grant;
pub use message::{
    DecodeError, DocUnavailableMessage, EmptyData, EphemeralMessage, ErrorMessage, JoinMessage,
    Message, MessageData, PeerMessage, RemoteHeads, RemoteHeadsChangedMessage,
    RemoteSubscriptionChangeMessage, SyncMessage, PROTOCOL_VERSION,
};
pub use network::{
    Connection, ConnectionState, Connections, LocalPeer, MessageSink, MessageStream,
    NetworkAdapter, NetworkError, RemotePeer,
};
pub use peer::{PeerId, PeerMetadata, SessionId, StorageId};
pub use storage::{
    content_hash, heads_hash, ChunkKey, ChunkKind, StorageAdapter, StorageError, StorageKey,
};
pub use url::{url_heads, AutomergeUrl, InvalidUrl, UrlHead};
