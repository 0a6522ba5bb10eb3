//! The ids that tie an effect to the input that answers it.

/// A share-policy question the actor asked ([`Ask`](super::DocumentEffect::Ask)); its answer
/// comes back as [`Answered`](super::DocumentInput::Answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuestionId(pub(crate) u64);

/// A stored sync state the actor asked for
/// ([`LoadSyncState`](super::DocumentEffect::LoadSyncState)); it comes back as
/// [`SyncStateLoaded`](super::DocumentInput::SyncStateLoaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadId(pub(crate) u64);

/// A save the actor started ([`Save`](super::DocumentEffect::Save)); its outcome comes back as
/// [`Saved`](super::DocumentInput::Saved). Saves are numbered in the order they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaveId(pub(crate) u64);

/// A command of the application's, chosen by the driver; the actor names it again in
/// [`Completed`](super::DocumentEffect::Completed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

/// Hands out one kind of id, counting from 1, per actor.
#[derive(Debug, Default)]
pub(crate) struct Counter(u64);

impl Counter {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }

    /// The last number given (0 before the first).
    pub(crate) fn last(&self) -> u64 {
        self.0
    }
}
