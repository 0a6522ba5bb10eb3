//! One document's decisions, as a sans-IO actor: [`DocumentActor`].
//!
//! The repo's driver gives each document in memory an actor and a task. The task feeds the
//! actor [`DocumentInput`]s — peers coming and going, their messages, local changes, the
//! application's commands, the answers to the actor's own questions, timer expiries — each with
//! the current time and the document, and performs the [`DocumentEffect`]s that come back:
//! frames to send, share-policy questions to ask, storage to read and write, states and change
//! events to publish. The actor never waits, reads a clock or touches IO, so a test or the
//! simulation can drive it step by step on a virtual clock.

mod actor;
mod durable_acks;
mod effect;
mod ids;
mod input;
mod save_job;
mod share;

pub use actor::{DocumentActor, DocumentConfig, LoggedPatches, Start};
pub use effect::{Changed, DocumentEffect, ShareAnswer, ShareQuestion};
pub(crate) use ids::Counter;
pub use ids::{CommandId, QuestionId, ReadId, SaveId};
pub use input::{DocumentInput, PeerInfo};
pub use save_job::{SaveJob, SaveOutcome};
