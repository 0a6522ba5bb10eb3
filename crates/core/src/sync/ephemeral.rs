//! Receive-side filtering of `ephemeral` messages (docs/protocol.md#ephemeral-messages).

use std::collections::HashMap;

use crate::{PeerId, SessionId};

/// Remembers, per original sender and session, the last `count` accepted.
///
/// The first message of a `(senderId, sessionId)` pair is accepted whatever its count; later ones
/// only when the count is strictly greater. Forwarded copies keep the original sender, session
/// and count, so a copy that comes back around a cycle of peers is dropped here.
///
/// ```
/// use tandem_core::sync::EphemeralDedup;
/// let mut dedup = EphemeralDedup::default();
/// let (alice, session) = ("alice".into(), "s1".into());
/// assert!(dedup.accept(&alice, &session, 5));
/// assert!(!dedup.accept(&alice, &session, 5)); // the echo
/// assert!(dedup.accept(&alice, &session, 6));
/// ```
#[derive(Debug, Default)]
pub struct EphemeralDedup {
    last_count: HashMap<(PeerId, SessionId), u64>,
}

impl EphemeralDedup {
    /// Whether a message is new; records it if so.
    pub fn accept(&mut self, sender: &PeerId, session: &SessionId, count: u64) -> bool {
        match self.last_count.get_mut(&(sender.clone(), session.clone())) {
            Some(last) if count <= *last => false,
            Some(last) => {
                *last = count;
                true
            }
            None => {
                self.last_count
                    .insert((sender.clone(), session.clone()), count);
                true
            }
        }
    }

    /// Forgets every session of `sender` (it disconnected for good, or its memory is reclaimed).
    pub fn forget_sender(&mut self, sender: &PeerId) {
        self.last_count.retain(|(peer, _), _| peer != sender);
    }

    /// How many sessions are remembered.
    pub fn len(&self) -> usize {
        self.last_count.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.last_count.is_empty()
    }
}
