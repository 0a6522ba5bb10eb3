//! The messages peers exchange (docs/protocol.md#messages) and their CBOR codec.
//!
//! One WebSocket binary frame carries one message: a CBOR map with a `type` key. [`Message::decode`]
//! accepts what the JS peers send (and the leniencies of their decoder); [`Message::encode`]
//! writes what cbor-x writes, byte for byte, for every message a JS repo produces.

mod decode;
mod encode;

pub use decode::DecodeError;

use crate::{DocumentId, PeerId, PeerMetadata, SessionId, StorageId, UrlHead};

/// The only protocol version of automerge-repo 2.x.
pub const PROTOCOL_VERSION: &str = "1";

/// A message's `data`: never empty, because JS adapters refuse to send zero-length data and an
/// empty automerge sync message is not a message.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageData(Vec<u8>);

/// The error of [`MessageData::new`] for zero bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message data must not be empty")]
pub struct EmptyData;

impl MessageData {
    /// Wraps `bytes`, refusing an empty buffer.
    pub fn new(bytes: Vec<u8>) -> Result<Self, EmptyData> {
        if bytes.is_empty() {
            Err(EmptyData)
        } else {
            Ok(MessageData(bytes))
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, owned.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl TryFrom<Vec<u8>> for MessageData {
    type Error = EmptyData;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        MessageData::new(bytes)
    }
}

impl std::fmt::Debug for MessageData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageData({} bytes)", self.0.len())
    }
}

/// Everything that crosses a connection: the handshake (`join`, `peer`, `error`) and the repo
/// messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Client → server, first message on a socket.
    Join(JoinMessage),
    /// Server → client, accepting a join.
    Peer(PeerMessage),
    /// Server → client before it closes the socket (unsupported protocol version).
    Error(ErrorMessage),
    /// An automerge sync message for one document.
    Sync(SyncMessage),
    /// Like `sync`, from a peer that does not have the document and asks for it.
    Request(SyncMessage),
    /// The sender does not have the document (or will not share it).
    DocUnavailable(DocUnavailableMessage),
    /// An application value broadcast to a document's peers and not stored.
    Ephemeral(EphemeralMessage),
    /// Remote-heads gossip: which storage ids the sender wants heads of.
    RemoteSubscriptionChange(RemoteSubscriptionChangeMessage),
    /// Remote-heads gossip: the heads some storage id has of a document.
    RemoteHeadsChanged(RemoteHeadsChangedMessage),
}

/// `join`: a client introduces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMessage {
    /// The client's peer id.
    pub sender_id: PeerId,
    /// The client's storage id and ephemerality.
    pub peer_metadata: PeerMetadata,
    /// Offered versions; `None` (absent) is taken as `["1"]` by JS servers.
    pub supported_protocol_versions: Option<Vec<String>>,
}

/// `peer`: the server accepts a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMessage {
    /// The server's peer id.
    pub sender_id: PeerId,
    /// The server's storage id and ephemerality.
    pub peer_metadata: PeerMetadata,
    /// Always [`PROTOCOL_VERSION`].
    pub selected_protocol_version: String,
    /// The client that joined.
    pub target_id: PeerId,
}

/// `error`: the server refuses a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The server's peer id.
    pub sender_id: PeerId,
    /// Human-readable reason (`unsupported protocol version`).
    pub message: String,
    /// The refused client.
    pub target_id: PeerId,
}

/// `sync` and `request`: one automerge sync message for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMessage {
    /// Who generated the sync message.
    pub sender_id: PeerId,
    /// Whom it is for.
    pub target_id: PeerId,
    /// The document it syncs.
    pub document_id: DocumentId,
    /// The encoded automerge sync message (first byte 0x42 or 0x43).
    pub data: MessageData,
}

/// `doc-unavailable`: the sender has no copy of the document it can share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocUnavailableMessage {
    /// The peer without the document.
    pub sender_id: PeerId,
    /// The peer that asked.
    pub target_id: PeerId,
    /// The document.
    pub document_id: DocumentId,
}

/// `ephemeral`: a CBOR-encoded application value for a document's peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralMessage {
    /// The original sender; forwarding keeps it.
    pub sender_id: PeerId,
    /// The next hop.
    pub target_id: PeerId,
    /// The document whose peers get the value.
    pub document_id: DocumentId,
    /// The CBOR-encoded value.
    pub data: MessageData,
    /// The original sender's per-session counter; receivers drop counts they have seen.
    pub count: u64,
    /// The original sender's session.
    pub session_id: SessionId,
}

/// `remote-subscription-change`: storage ids to start and stop hearing heads of.
///
/// `None` and `Some(vec![])` differ on the wire (`undefined` versus `[]`) and are kept apart so
/// re-encoding reproduces the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSubscriptionChangeMessage {
    /// The subscriber.
    pub sender_id: PeerId,
    /// The peer asked to relay.
    pub target_id: PeerId,
    /// Storage ids to subscribe to.
    pub add: Option<Vec<StorageId>>,
    /// Storage ids to unsubscribe from.
    pub remove: Option<Vec<StorageId>>,
}

/// `remote-heads-changed`: heads that other storages hold of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHeadsChangedMessage {
    /// The peer reporting the heads.
    pub sender_id: PeerId,
    /// The subscriber.
    pub target_id: PeerId,
    /// The document.
    pub document_id: DocumentId,
    /// Per storage id, in wire order (JS sends exactly one entry).
    pub new_heads: Vec<(StorageId, RemoteHeads)>,
}

/// The heads a storage holds of a document, and when that was learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHeads {
    /// Base58Check heads (possibly empty).
    pub heads: Vec<UrlHead>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
}

impl Message {
    /// About how many bytes the message takes on the wire: its payload, and a little for the
    /// rest (for bounds on what waits to be sent, not for framing).
    pub fn approximate_size(&self) -> usize {
        const ENVELOPE: usize = 128;
        let payload = match self {
            Message::Sync(m) | Message::Request(m) => m.data.as_bytes().len(),
            Message::Ephemeral(m) => m.data.as_bytes().len(),
            _ => 0,
        };
        ENVELOPE + payload
    }

    /// The `type` string of this message on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Join(_) => "join",
            Message::Peer(_) => "peer",
            Message::Error(_) => "error",
            Message::Sync(_) => "sync",
            Message::Request(_) => "request",
            Message::DocUnavailable(_) => "doc-unavailable",
            Message::Ephemeral(_) => "ephemeral",
            Message::RemoteSubscriptionChange(_) => "remote-subscription-change",
            Message::RemoteHeadsChanged(_) => "remote-heads-changed",
        }
    }

    /// The peer that sent (or, for forwarded ephemeral messages, originated) the message.
    pub fn sender_id(&self) -> &PeerId {
        match self {
            Message::Join(m) => &m.sender_id,
            Message::Peer(m) => &m.sender_id,
            Message::Error(m) => &m.sender_id,
            Message::Sync(m) | Message::Request(m) => &m.sender_id,
            Message::DocUnavailable(m) => &m.sender_id,
            Message::Ephemeral(m) => &m.sender_id,
            Message::RemoteSubscriptionChange(m) => &m.sender_id,
            Message::RemoteHeadsChanged(m) => &m.sender_id,
        }
    }

    /// The addressee; `join` has none.
    pub fn target_id(&self) -> Option<&PeerId> {
        match self {
            Message::Join(_) => None,
            Message::Peer(m) => Some(&m.target_id),
            Message::Error(m) => Some(&m.target_id),
            Message::Sync(m) | Message::Request(m) => Some(&m.target_id),
            Message::DocUnavailable(m) => Some(&m.target_id),
            Message::Ephemeral(m) => Some(&m.target_id),
            Message::RemoteSubscriptionChange(m) => Some(&m.target_id),
            Message::RemoteHeadsChanged(m) => Some(&m.target_id),
        }
    }

    /// The document the message is about, for the message kinds that have one.
    pub fn document_id(&self) -> Option<&DocumentId> {
        match self {
            Message::Sync(m) | Message::Request(m) => Some(&m.document_id),
            Message::DocUnavailable(m) => Some(&m.document_id),
            Message::Ephemeral(m) => Some(&m.document_id),
            Message::RemoteHeadsChanged(m) => Some(&m.document_id),
            Message::Join(_)
            | Message::Peer(_)
            | Message::Error(_)
            | Message::RemoteSubscriptionChange(_) => None,
        }
    }

    /// Whether this is part of the WebSocket handshake rather than a repo message.
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            Message::Join(_) | Message::Peer(_) | Message::Error(_)
        )
    }

    /// Reads one message from one frame. Malformed CBOR, trailing bytes, a missing or unknown
    /// `type`, a missing field, a field of the wrong type and an invalid document id are typed
    /// errors: the caller drops the frame (or the connection) and goes on.
    pub fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
        decode::decode(frame)
    }

    /// Writes the message as cbor-x does: map16 headers, keys in JS order, `undefined` for absent
    /// optional values, float64 for integers of 2^32 and above.
    pub fn encode(&self) -> Vec<u8> {
        encode::encode(self)
    }
}
