//! Presence: who else is on a document and what they are doing (a cursor, a name, a colour),
//! carried by ephemeral messages as automerge-repo's `Presence` (2.5.2 and later) carries it.
//!
//! [`PresenceTracker`] makes the decisions — what to broadcast when, whom to remember and for
//! how long — with the time passed in; tandem-repo's `DocHandle::presence` drives it.

mod message;
mod tracker;

pub use message::{PresenceMessage, PresenceMessageError, PRESENCE_MARKER};
pub use tracker::{
    PeerPresence, PresenceConfig, PresenceEffect, PresenceEvent, PresenceTracker, HELLO_DELAY,
    MAX_PEERS,
};
