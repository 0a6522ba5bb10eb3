//! The per-document synchronisation decisions of a repo, with no IO
//! (docs/protocol.md#synchronisation).
//!
//! A repo keeps one [`DocumentSync`] per document it holds. The driver feeds it what happened —
//! a peer joined the document, a `sync`/`request`/`doc-unavailable` arrived, the document changed
//! locally, loading finished, the find timed out — together with the document itself, and gets
//! back a [`SyncOutput`]: the messages to send, the sync states to persist, the remote heads
//! learned and the handle state to publish. Nothing here sleeps, spawns or reads a clock, so a
//! test can step two synchronizers against each other message by message.
//!
//! [`EphemeralDedup`] is the network-layer filter for `ephemeral` messages
//! (docs/protocol.md#ephemeral-messages): it accepts a `senderId:sessionId` stream only when its
//! count moves forward, which is what stops forwarding loops between hubs.
//!
//! [`RemoteHeadsGossip`] is the repo-wide state of remote-heads gossip
//! (docs/protocol.md#remote-heads-gossip): who subscribed to which storage ids, and which heads to
//! relay to whom.

mod document;
mod ephemeral;
mod gossip;
mod handle_state;

pub use document::{DocumentSync, PeerStatus, SyncError, SyncOutput};
pub use ephemeral::EphemeralDedup;
pub use gossip::{GossipOutput, RemoteHeadsGossip};
pub use handle_state::HandleState;
