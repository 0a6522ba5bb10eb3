//! Whether a document is synced with a peer (PROTOCOL.md §5.5), one policy question at a time.
//!
//! Offered if the policy announces it to the peer; synced on if the peer asked for it on its
//! current connection, or asked for if we look for it and lack it — those two only with
//! `access`. A peer the policy offers nothing at all (`announce(peer, None)` false) is not asked
//! about this document's announcement.

use super::ShareQuestion;

/// Where a share decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShareRule {
    /// The peer asked on this connection, or we look for the document and lack it.
    asked_or_looking: bool,
}

/// The next step of a share decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShareStep {
    /// Decided: share or not.
    Decided(bool),
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

    /// The policy answered `question`.
    pub(crate) fn answer(self, question: ShareQuestion, allowed: bool) -> ShareStep {
        match question {
            ShareQuestion::Announce => self.after_announce(allowed),
            ShareQuestion::Access => ShareStep::Decided(allowed),
        }
    }

    fn after_announce(self, announced: bool) -> ShareStep {
        if announced {
            ShareStep::Decided(true)
        } else if self.asked_or_looking {
            ShareStep::Ask(ShareQuestion::Access)
        } else {
            ShareStep::Decided(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path through the rule, against the rule written as one boolean expression.
    #[test]
    fn the_steps_agree_with_the_rule() {
        for announce_any in [false, true] {
            for asked_or_looking in [false, true] {
                for announce in [false, true] {
                    for access in [false, true] {
                        let expected = (announce_any && announce) || (asked_or_looking && access);
                        let (rule, mut step) = ShareRule::start(announce_any, asked_or_looking);
                        let mut asked = Vec::new();
                        let decided = loop {
                            match step {
                                ShareStep::Decided(share) => break share,
                                ShareStep::Ask(question) => {
                                    asked.push(question);
                                    let allowed = match question {
                                        ShareQuestion::Announce => announce,
                                        ShareQuestion::Access => access,
                                    };
                                    step = rule.answer(question, allowed);
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
