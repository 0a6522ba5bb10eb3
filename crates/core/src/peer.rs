//! Who is talking: [`PeerId`], [`StorageId`], [`SessionId`] and [`PeerMetadata`]
//! (docs/protocol.md#peer-storage-and-session-ids).

use std::fmt;
use std::sync::Arc;

/// Declares a cheaply cloned text newtype: the three ids below are plain strings on the wire, and
/// the wire does not validate them, so neither do we (the storage layer guards its own keys).
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The text as it goes on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name(text.into())
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name(text.into())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), &*self.0)
            }
        }
    };
}

text_id! {
    /// A repo's name on the network, chosen by the application (`senderId` / `targetId`).
    ///
    /// Two connections with one peer id displace each other on a JS server, so the default
    /// ([`PeerId::random`]) carries enough randomness to be unique.
    PeerId
}

text_id! {
    /// The identity of a repo's storage: a lowercase hyphenated UUID v4, persisted under
    /// `["storage-adapter-id"]` and advertised in peer metadata.
    StorageId
}

text_id! {
    /// A per-`Repo` random id carried by ephemeral messages, so that receivers can tell a restarted
    /// sender (new session, counter from 1 again) from a replay.
    SessionId
}

impl PeerId {
    /// `peer-` followed by 16 random base-36 digits, in the style of automerge-repo's default ids.
    pub fn random() -> Self {
        PeerId::from(format!("peer-{}", base36(random_u128(), 16)))
    }
}

impl StorageId {
    /// A new random storage id (UUID v4 text), for a store that has none yet.
    pub fn random() -> Self {
        StorageId::from(uuid::Uuid::new_v4().hyphenated().to_string())
    }
}

impl SessionId {
    /// A new random session id of 11 base-36 digits, as automerge-repo makes them.
    pub fn random() -> Self {
        Self::from_random(random_u128())
    }

    /// A session id from caller-supplied randomness (for deterministic simulations).
    pub fn from_random(random: u128) -> Self {
        SessionId::from(base36(random, 11))
    }
}

fn random_u128() -> u128 {
    u128::from_le_bytes(*uuid::Uuid::new_v4().as_bytes())
}

/// The lowest `digits` base-36 digits of `value`.
fn base36(mut value: u128, digits: usize) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..digits)
        .map(|_| {
            let digit = ALPHABET[(value % 36) as usize] as char;
            value /= 36;
            digit
        })
        .collect()
}

/// What a peer says about itself when it connects (`peerMetadata` of `join` and `peer`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PeerMetadata {
    /// The peer's storage id; `None` for a peer without storage (sent as CBOR `undefined`).
    pub storage_id: Option<StorageId>,
    /// Whether the peer keeps nothing: we persist sync state only for peers that are not
    /// ephemeral and have a storage id. An absent flag reads as `false`, as in JS.
    pub is_ephemeral: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_the_js_shape() {
        let peer = PeerId::random();
        assert!(peer.as_str().starts_with("peer-"));
        assert_eq!(peer.as_str().len(), 21);
        assert_ne!(peer, PeerId::random());
        let storage = StorageId::random();
        assert_eq!(storage.as_str().len(), 36);
        assert_eq!(&storage.as_str()[14..15], "4");
        assert_eq!(SessionId::random().as_str().len(), 11);
        assert_eq!(SessionId::from_random(35).as_str(), "z0000000000");
    }
}
