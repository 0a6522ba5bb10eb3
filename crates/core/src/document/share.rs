//! Whether, and how, a document is synced with a peer (docs/protocol.md#share-policy), one policy
//! question at a time.
//!
//! A peer is a candidate if the policy announces the document to it, if it asked for the
//! document on its current connection, or if we look for the document and lack it; `access`
//! then says how far it is synced: both ways, read-only, or not at all. A peer the policy offers
//! nothing at all (`announce(peer, None)` false) is not asked about this document's
//! announcement.

use super::{ShareAnswer, ShareQuestion};
use crate::Access;

/// Where a share decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShareRule {
    /// The peer asked on this connection, or we look for the document and lack it.
    asked_or_looking: bool,
}

/// The next step of a share decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShareStep {
    /// Decided: how the document is synced with the peer.
    Decided(Access),
    /// Ask the policy this, then call [`ShareRule::answer`].
    Ask(ShareQuestion),
}

impl ShareRule {
    /// Starts a decision for a peer the policy offers anything (`announce_any`) or not.
    pub(crate) fn start(announce_any: bool, asked_or_looking: bool) -> (ShareRule, ShareStep) {
        let rule = ShareRule { asked_or_looking };
        let step = if announce_any {
            ShareStep::Ask(ShareQuestion::Announce)
        } else {
            rule.after_announce(false)
        };
        (rule, step)
    }

    /// The policy answered.
    pub(crate) fn answer(self, answer: ShareAnswer) -> ShareStep {
        match answer {
            ShareAnswer::Announce(announced) => self.after_announce(announced),
            ShareAnswer::Access(access) => ShareStep::Decided(access),
        }
    }

    fn after_announce(self, announced: bool) -> ShareStep {
        if announced || self.asked_or_looking {
            // Announced or not, the peer may only have what `access` grants, and as far as it
            // grants it.
            ShareStep::Ask(ShareQuestion::Access)
        } else {
            ShareStep::Decided(Access::Denied)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path through the rule, against the rule written as one expression.
    #[test]
    fn the_steps_agree_with_the_rule() {
        for announce_any in [false, true] {
            for asked_or_looking in [false, true] {
                for announce in [false, true] {
                    for access in [Access::ReadWrite, Access::ReadOnly, Access::Denied] {
                        let candidate = (announce_any && announce) || asked_or_looking;
                        let expected = if candidate { access } else { Access::Denied };
                        let (rule, mut step) = ShareRule::start(announce_any, asked_or_looking);
                        let mut asked = Vec::new();
                        let decided = loop {
                            match step {
                                ShareStep::Decided(access) => break access,
                                ShareStep::Ask(question) => {
                                    asked.push(question);
                                    step = rule.answer(match question {
                                        ShareQuestion::Announce => ShareAnswer::Announce(announce),
                                        ShareQuestion::Access => ShareAnswer::Access(access),
                                    });
                                }
                            }
                        };
                        assert_eq!(decided, expected);
                        assert!(asked.len() <= 2);
                        if !announce_any {
                            assert!(!asked.contains(&ShareQuestion::Announce));
                        }
                    }
                }
            }
        }
    }
}
