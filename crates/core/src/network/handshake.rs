//! The `join` / `peer` / `error` exchange (docs/protocol.md#handshake), as pure decisions.
//!
//! Every transport that frames messages itself (WebSocket, TCP) runs the same exchange: the
//! accepting side reads the first message and asks [`answer_join`] what to do; the connecting
//! side sends its [`join`] and reads the answer with [`read_answer`]. Nothing here does IO, so
//! the rules (which versions are accepted, what an authenticated identity allows) are tested
//! directly, once for every transport.

use std::time::Duration;

use crate::{
    ErrorMessage, JoinMessage, LocalPeer, Message, PeerId, PeerMessage, RemotePeer,
    PROTOCOL_VERSION,
};

/// The text JS servers put in `error` for a version they do not speak.
pub const UNSUPPORTED_VERSION: &str = "unsupported protocol version";

/// What a server does with a socket's first message.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerDecision {
    /// Bind the socket to `remote` and send `reply` (a `peer`) before anything else.
    Accept {
        /// The client, as its join introduced it.
        remote: RemotePeer,
        /// The `peer` message.
        reply: Message,
    },
    /// Send `reply` (an `error`, when the client said who it is) and close the socket.
    Reject {
        /// The `error` message, if there is anyone to address it to.
        reply: Option<Message>,
        /// Why, for the log.
        reason: String,
    },
}

/// Who a socket may join as, when the application's upgrade hook bound it to an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// This peer id only.
    Exactly(PeerId),
    /// A subject (a token's `sub`): the id itself, or any id under it, `subject/…` (one user,
    /// several tabs).
    Subject(String),
}

impl Identity {
    /// Whether a join as `peer` is this identity.
    ///
    /// ```
    /// use tandem_core::network::handshake::Identity;
    /// let ada = Identity::Subject("ada".into());
    /// assert!(ada.admits(&"ada".into()) && ada.admits(&"ada/tab-2".into()));
    /// assert!(!ada.admits(&"adam".into()));
    /// ```
    pub fn admits(&self, peer: &PeerId) -> bool {
        match self {
            Identity::Exactly(id) => id == peer,
            Identity::Subject(subject) => peer
                .as_str()
                .strip_prefix(subject.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// A server's answer to the first message on a socket. `identity` is what the application's
/// upgrade hook bound the socket to, if it did: a join as anyone else is refused, so nobody can
/// take over someone else's peer id.
pub fn answer_join(
    local: &LocalPeer,
    first: &Message,
    identity: Option<&Identity>,
) -> ServerDecision {
    let Message::Join(join) = first else {
        return ServerDecision::Reject {
            reply: None,
            reason: format!("first message is `{}`, not `join`", first.type_name()),
        };
    };
    let refuse = |message: &str, reason: String| ServerDecision::Reject {
        reply: Some(Message::Error(ErrorMessage {
            sender_id: local.peer_id.clone(),
            message: message.to_owned(),
            target_id: join.sender_id.clone(),
        })),
        reason,
    };
    // Absent means version 1, as in JS.
    let speaks_ours = join
        .supported_protocol_versions
        .as_ref()
        .map_or(true, |versions| {
            versions.iter().any(|v| v == PROTOCOL_VERSION)
        });
    if !speaks_ours {
        return refuse(
            UNSUPPORTED_VERSION,
            format!(
                "client offers versions {:?}",
                join.supported_protocol_versions
            ),
        );
    }
    if let Some(identity) = identity {
        if !identity.admits(&join.sender_id) {
            return refuse(
                "peer id does not match the authenticated identity",
                format!(
                    "authenticated as {identity:?} but joined as {}",
                    join.sender_id
                ),
            );
        }
    }
    if join.sender_id == local.peer_id {
        return refuse(
            "peer id is the server's own",
            "a client joined with the server's peer id".to_owned(),
        );
    }
    ServerDecision::Accept {
        remote: RemotePeer {
            peer_id: join.sender_id.clone(),
            metadata: join.peer_metadata.clone(),
        },
        reply: Message::Peer(PeerMessage {
            sender_id: local.peer_id.clone(),
            peer_metadata: local.metadata.clone(),
            selected_protocol_version: PROTOCOL_VERSION.to_owned(),
            target_id: join.sender_id.clone(),
        }),
    }
}

/// The `join` a client sends when its socket opens.
pub fn join(local: &LocalPeer) -> Message {
    Message::Join(JoinMessage {
        sender_id: local.peer_id.clone(),
        peer_metadata: local.metadata.clone(),
        supported_protocol_versions: Some(vec![PROTOCOL_VERSION.to_owned()]),
    })
}

/// What a client makes of a message while it waits for the server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutcome {
    /// The server accepted: it is `remote`.
    Accepted(RemotePeer),
    /// The server refused, saying why. Retrying the same join will not help.
    Refused(String),
    /// Not an answer (a JS server sends nothing else first, but a message could overtake):
    /// keep waiting.
    NotAnAnswer,
}

/// Reads a message received before the handshake finished.
pub fn read_answer(message: &Message) -> ClientOutcome {
    match message {
        Message::Peer(peer) => ClientOutcome::Accepted(RemotePeer {
            peer_id: peer.sender_id.clone(),
            metadata: peer.peer_metadata.clone(),
        }),
        Message::Error(error) => ClientOutcome::Refused(error.message.clone()),
        _ => ClientOutcome::NotAnAnswer,
    }
}

/// How long a connecting side waits before its next attempt after `failures` failed ones in a
/// row: doubling from `initial` up to `max`, then scaled by `jitter` (the caller draws it from
/// `0.5..=1.0`, so that the clients of a restarted server do not all come back at once).
///
/// ```
/// use std::time::Duration;
/// use tandem_core::network::handshake::reconnect_delay;
/// let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(reconnect_delay(initial, max, 3, 1.0), Duration::from_millis(400));
/// assert_eq!(reconnect_delay(initial, max, 40, 0.5), Duration::from_millis(500));
/// ```
pub fn reconnect_delay(initial: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let doubling = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    initial
        .saturating_mul(doubling)
        .min(max)
        .mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PeerMetadata;

    fn server() -> LocalPeer {
        LocalPeer {
            peer_id: PeerId::from("server"),
            metadata: PeerMetadata::default(),
        }
    }

    fn join_with(sender: &str, versions: Option<Vec<&str>>) -> Message {
        Message::Join(JoinMessage {
            sender_id: PeerId::from(sender),
            peer_metadata: PeerMetadata::default(),
            supported_protocol_versions: versions
                .map(|v| v.into_iter().map(str::to_owned).collect()),
        })
    }

    #[test]
    fn version_one_or_none_is_accepted_and_answered_with_peer() {
        for versions in [None, Some(vec!["1"]), Some(vec!["2", "1"])] {
            match answer_join(&server(), &join_with("c", versions), None) {
                ServerDecision::Accept { remote, reply } => {
                    assert_eq!(remote.peer_id, PeerId::from("c"));
                    assert_eq!(reply.type_name(), "peer");
                    assert_eq!(reply.target_id(), Some(&PeerId::from("c")));
                    assert_eq!(
                        read_answer(&reply),
                        ClientOutcome::Accepted(RemotePeer {
                            peer_id: PeerId::from("server"),
                            metadata: PeerMetadata::default(),
                        })
                    );
                }
                other => panic!("refused: {other:?}"),
            }
        }
    }

    #[test]
    fn other_versions_a_non_join_and_a_mismatched_identity_are_refused() {
        let ServerDecision::Reject {
            reply: Some(reply), ..
        } = answer_join(&server(), &join_with("c", Some(vec!["2"])), None)
        else {
            panic!("accepted an unknown version");
        };
        assert_eq!(
            read_answer(&reply),
            ClientOutcome::Refused(UNSUPPORTED_VERSION.to_owned())
        );
        let not_join = Message::DocUnavailable(crate::DocUnavailableMessage {
            sender_id: PeerId::from("c"),
            target_id: PeerId::from("server"),
            document_id: crate::DocumentId::random(),
        });
        assert!(matches!(
            answer_join(&server(), &not_join, None),
            ServerDecision::Reject { reply: None, .. }
        ));
        assert!(matches!(
            answer_join(
                &server(),
                &join_with("mallory", None),
                Some(&Identity::Exactly(PeerId::from("alice")))
            ),
            ServerDecision::Reject { reply: Some(_), .. }
        ));
        assert!(matches!(
            answer_join(
                &server(),
                &join_with("alice", None),
                Some(&Identity::Exactly(PeerId::from("alice")))
            ),
            ServerDecision::Accept { .. }
        ));
        assert!(matches!(
            answer_join(&server(), &join_with("server", None), None),
            ServerDecision::Reject { .. }
        ));
    }
}
