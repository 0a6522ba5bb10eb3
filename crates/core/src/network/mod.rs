//! The [`NetworkAdapter`] trait: how a transport hands the repo its connections.
//!
//! A transport (in-memory channel, WebSocket client, WebSocket server, anything later) does its
//! own handshake and yields one [`Connection`] per remote peer it reaches. A connection is a
//! message sink, a message stream and the peer's identity; when the stream ends the peer is gone.
//! A client that reconnects yields a new `Connection` each time; a server yields one per accepted
//! socket. The repo holds any number of adapters and treats all their connections alike.
//!
//! Transports that frame messages themselves share the `join` / `peer` exchange in [`handshake`].
//!
//! With the `test-suite` feature, `conformance` checks an adapter against what the repo relies
//! on; every transport runs it.

#[cfg(feature = "test-suite")]
pub mod conformance;
pub mod handshake;

use std::pin::Pin;

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::{Sink, SinkExt, Stream, StreamExt};

use crate::{DecodeError, Message, PeerId, PeerMetadata};

/// A transport failure. Per-connection errors end that connection only.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The connection is closed; nothing more can be sent.
    #[error("connection closed")]
    Closed,
    /// The transport's IO failed.
    #[error("network I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The remote peer broke the handshake (wrong first message, refused version, timeout).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The remote peer sent something the protocol does not allow.
    #[error("protocol violation by {peer}: {reason}")]
    Protocol {
        /// The offending peer.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
    /// A frame that is not a message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] DecodeError),
    /// Anything else the transport reports (its own error type, rendered).
    #[error("{0}")]
    Other(String),
}

/// Where a connecting transport (a client) is, for an "offline / connecting / online"
/// indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not started yet, or waiting before the next attempt.
    Offline,
    /// Connecting and joining.
    Connecting,
    /// Joined: the server is a peer of the repo.
    Online,
    /// No more attempts: the server refused us (the text says why) or we gave up.
    Stopped(String),
}

/// Who we are, as a transport presents us in its handshake (`join` or `peer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPeer {
    /// Our peer id.
    pub peer_id: PeerId,
    /// Our storage id and ephemerality.
    pub metadata: PeerMetadata,
}

/// The peer at the other end of a connection, as its handshake introduced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePeer {
    /// Its peer id: messages on this connection claiming another sender are not its to send.
    pub peer_id: PeerId,
    /// Its storage id and ephemerality.
    pub metadata: PeerMetadata,
}

/// Where the repo writes messages for one peer. Bounded: a slow peer pushes back.
pub type MessageSink = Pin<Box<dyn Sink<Message, Error = NetworkError> + Send>>;

/// Messages arriving from one peer. An `Err` item reports why the connection failed; the stream
/// ends after it. The end of the stream is the peer's disconnection.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<Message, NetworkError>> + Send>>;

/// The connections a started adapter establishes, as they come. The stream ends when the adapter
/// stops for good; dropping it stops the adapter.
pub type Connections = Pin<Box<dyn Stream<Item = Connection> + Send>>;

/// One established connection to one remote peer, after the transport's handshake.
///
/// Dropping `outgoing` (or closing it) asks the transport to close the connection.
pub struct Connection {
    /// The peer.
    pub remote: RemotePeer,
    /// Messages to the peer.
    pub outgoing: MessageSink,
    /// Messages from the peer.
    pub incoming: MessageStream,
    /// What the peer's credentials allow ([`Grant::default`](crate::Grant): whatever the share
    /// policy allows).
    pub grant: crate::Grant,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Two ends of an in-process connection between `a` and `b`, each direction a bounded
    /// channel of `capacity` messages: `.0` is `a`'s end (its remote is `b`), `.1` is `b`'s.
    ///
    /// Messages are passed as values, not encoded; dropping either end's `outgoing` ends the
    /// other end's `incoming`.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use futures::{SinkExt, StreamExt};
    /// use tandem_core::{Connection, LocalPeer, Message, PeerMetadata, DocUnavailableMessage, DocumentId};
    /// let a = LocalPeer { peer_id: "a".into(), metadata: PeerMetadata::default() };
    /// let b = LocalPeer { peer_id: "b".into(), metadata: PeerMetadata::default() };
    /// let (mut at_a, mut at_b) = Connection::in_memory_pair(&a, &b, 8);
    /// assert_eq!(at_a.remote.peer_id, b.peer_id);
    /// let hello = Message::DocUnavailable(DocUnavailableMessage {
    ///     sender_id: a.peer_id.clone(), target_id: b.peer_id.clone(), document_id: DocumentId::random(),
    /// });
    /// at_a.outgoing.send(hello.clone()).await.unwrap();
    /// assert_eq!(at_b.incoming.next().await.unwrap().unwrap(), hello);
    /// drop(at_a);
    /// assert!(at_b.incoming.next().await.is_none());
    /// # });
    /// ```
    pub fn in_memory_pair(
        a: &LocalPeer,
        b: &LocalPeer,
        capacity: usize,
    ) -> (Connection, Connection) {
        let (a_to_b, from_a) = mpsc::channel(capacity);
        let (b_to_a, from_b) = mpsc::channel(capacity);
        let end = |remote: &LocalPeer, tx: mpsc::Sender<Message>, rx: mpsc::Receiver<Message>| {
            Connection {
                remote: RemotePeer {
                    peer_id: remote.peer_id.clone(),
                    metadata: remote.metadata.clone(),
                },
                outgoing: Box::pin(tx.sink_map_err(|_| NetworkError::Closed)),
                incoming: Box::pin(rx.map(Ok)),
                grant: crate::Grant::default(),
            }
        };
        (end(b, a_to_b, from_b), end(a, b_to_a, from_a))
    }
}

/// A transport. The repo calls [`start`](NetworkAdapter::start) once with its own identity and
/// then takes connections from the returned stream until it ends or the repo shuts down.
///
/// Adapters own their reconnect policy, keepalive and framing; what reaches the repo is only ever
/// an established connection to a known peer.
#[async_trait]
pub trait NetworkAdapter: Send + Sync + 'static {
    /// Starts the transport as `local`. Fails only if it cannot start at all (a listener that
    /// cannot bind); failures of single connections are reported on those connections.
    async fn start(self: Box<Self>, local: LocalPeer) -> Result<Connections, NetworkError>;

    /// For a transport that connects out (a client): resolves once its first attempt to
    /// connect has ended, joined or not, with the connection it made (if any) already on the
    /// stream [`start`](NetworkAdapter::start) returned. Until then (or until the stream yields
    /// a connection, which ends the wait too) the repo does not declare a document it looks for
    /// unavailable for want of a peer that has it: the peer may be about to join. Asked once,
    /// before `start`. `None` (the default): a transport that only accepts connections, or
    /// whose connections exist at once.
    fn first_attempt(&self) -> Option<futures::future::BoxFuture<'static, ()>> {
        None
    }
}
