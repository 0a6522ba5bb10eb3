//! What a peer may do with a document: the share policy's answer to `access`.

/// What a peer may do with one document, as the share policy decides it.
///
/// ```
/// use tandem_core::Access;
/// assert_eq!(Access::from(true), Access::ReadWrite);
/// assert!(Access::ReadOnly.may_read() && !Access::ReadOnly.may_write());
/// assert!(!Access::Denied.may_read());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Synced both ways: the peer receives the document, and its changes are applied.
    ReadWrite,
    /// The peer receives the document and every later change; its own changes are never
    /// applied, stored or relayed (automerge's read-only sync, which also tells the peer not to
    /// send them).
    ReadOnly,
    /// Not synced: a peer asking for the document is told it is unavailable, exactly as if it
    /// did not exist.
    Denied,
}

impl Access {
    /// Whether the peer receives the document.
    pub fn may_read(self) -> bool {
        !matches!(self, Access::Denied)
    }

    /// Whether the peer's changes are applied.
    pub fn may_write(self) -> bool {
        matches!(self, Access::ReadWrite)
    }

    /// The narrower of two: what both allow.
    ///
    /// ```
    /// use tandem_core::Access;
    /// assert_eq!(Access::ReadWrite.narrowed_by(Access::ReadOnly), Access::ReadOnly);
    /// assert_eq!(Access::ReadOnly.narrowed_by(Access::Denied), Access::Denied);
    /// ```
    pub fn narrowed_by(self, other: Access) -> Access {
        let rank = |access: Access| match access {
            Access::Denied => 0,
            Access::ReadOnly => 1,
            Access::ReadWrite => 2,
        };
        if rank(other) < rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<bool> for Access {
    /// `true`: read-write; `false`: denied (a policy that answers yes or no).
    fn from(allowed: bool) -> Self {
        if allowed {
            Access::ReadWrite
        } else {
            Access::Denied
        }
    }
}
