//! The repo's routing decisions, as a sans-IO actor: [`HubActor`].
//!
//! A frame from a connection is decoded by the transport, handed to the hub actor
//! ([`HubInput::Incoming`]), which checks what it claims and tells the document's actor
//! ([`HubEffect::Tell`]); the document actor decides what to send and save
//! ([`crate::document`]); the driver performs both actors' effects.

mod actor;
mod effect;
mod ids;
mod input;
mod introductions;
mod rate;

pub use actor::{HubActor, KEPT_INTRODUCTIONS};
pub use effect::{DocumentEvent, HubEffect};
pub use ids::{ConnectionId, DocumentActorId, HubQuestionId};
pub use input::{FindMode, HubInput};
pub use rate::{EphemeralRate, EPHEMERAL_BURST, EPHEMERAL_DROPS_BEFORE_CUT, EPHEMERAL_PER_SECOND};

#[cfg(test)]
mod tests;
