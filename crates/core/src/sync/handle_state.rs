//! The lifecycle of a document handle (docs/protocol.md#handle-states).

use std::fmt;

/// Where a document handle is in its life.
///
/// `Idle → Loading → (Requesting →) Ready`, or `Unavailable` when nobody has the document (it
/// still becomes `Ready` if a peer later sends it). `Unloaded` handles were evicted from memory
/// and reload on the next find; `Deleted` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandleState {
    /// Created, not started.
    Idle,
    /// Reading storage.
    Loading,
    /// Not in storage; asking peers.
    Requesting,
    /// The document is here and can be read and changed.
    Ready,
    /// Every peer asked said it does not have the document (or none could be asked).
    Unavailable,
    /// Saved and dropped from memory.
    Unloaded,
    /// Deleted locally; final.
    Deleted,
}

impl HandleState {
    /// The name automerge-repo gives the state (`"ready"`, `"unavailable"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            HandleState::Idle => "idle",
            HandleState::Loading => "loading",
            HandleState::Requesting => "requesting",
            HandleState::Ready => "ready",
            HandleState::Unavailable => "unavailable",
            HandleState::Unloaded => "unloaded",
            HandleState::Deleted => "deleted",
        }
    }

    /// Whether the state will not change without something new happening (a find settles here).
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            HandleState::Ready | HandleState::Unavailable | HandleState::Deleted
        )
    }
}

impl fmt::Display for HandleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
