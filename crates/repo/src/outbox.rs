//! The outgoing queue of one connection, shared by every document worker that talks to the peer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tandem_core::{Message, PeerId, PeerMetadata};
use tokio::sync::{mpsc, watch};

use crate::{PeerLimit, RepoObserver};

/// How many messages may wait for one peer before it counts as stuck and is disconnected.
///
/// Workers never wait on a peer (a full queue that blocked them could close a cycle of waits
/// between two repos); instead a peer that stops reading is cut off once this many messages pile
/// up, which bounds memory just the same.
pub const MAX_QUEUED_PER_PEER: usize = 1 << 16;

/// A connected peer as document workers see it: who it is and where its messages go.
#[derive(Clone, Debug)]
pub(crate) struct PeerLink {
    pub(crate) peer_id: PeerId,
    pub(crate) metadata: PeerMetadata,
    pub(crate) outbox: Outbox,
}

/// The sending side of a connection's queue.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Message>,
    shared: Arc<OutboxShared>,
}

pub(crate) struct OutboxShared {
    queued: AtomicUsize,
    /// The bytes of the messages queued (about: payloads plus a little for the envelope).
    queued_bytes: AtomicUsize,
    /// Past this many queued bytes the peer counts as stuck and is disconnected.
    max_bytes: usize,
    /// Told when the peer is disconnected for not reading.
    observer: Option<Arc<dyn RepoObserver>>,
    closed: AtomicBool,
    /// Tells the connection's tasks to stop.
    close: watch::Sender<bool>,
}

impl std::fmt::Debug for OutboxShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxShared")
            .field("queued", &self.queued)
            .field("queued_bytes", &self.queued_bytes)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl OutboxShared {
    /// Resolves once the connection is closed.
    pub(crate) async fn closed(&self) {
        let mut rx = self.close.subscribe();
        // The sender lives in `self`, so the wait ends only by closing.
        let _ = rx.wait_for(|closed| *closed).await;
    }
}

/// The receiving side, drained by the connection's writer task.
pub(crate) struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Message>,
    pub(crate) shared: Arc<OutboxShared>,
}

/// A connection's queue; past `max_bytes` queued, the peer is disconnected (and `observer`
/// told).
pub(crate) fn outbox(
    max_bytes: usize,
    observer: Option<Arc<dyn RepoObserver>>,
) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(OutboxShared {
        queued: AtomicUsize::new(0),
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        observer,
        closed: AtomicBool::new(false),
        close: watch::channel(false).0,
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        OutboxReceiver { rx, shared },
    )
}

impl Outbox {
    /// Queues `message`; drops it if the connection is closed or over its limit (closing it).
    pub(crate) fn send(&self, message: Message) {
        if self.shared.closed.load(Ordering::Relaxed) {
            return;
        }
        if self.shared.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_PER_PEER {
            tracing::warn!(
                peer = %message.target_id().map(|p| p.as_str()).unwrap_or("?"),
                "peer is not reading; disconnecting it"
            );
            self.cut_off();
            return;
        }
        let bytes = message.approximate_size();
        let before = self.shared.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        // One message larger than the bound still goes, whatever small ones wait before it (a
        // large document syncs): the queue may hold the bound plus one such message.
        let max = self.shared.max_bytes;
        if before > max || (bytes <= max && before + bytes > max) {
            tracing::warn!(
                peer = %message.target_id().map(|p| p.as_str()).unwrap_or("?"),
                queued_bytes = before,
                "peer is not reading its messages; disconnecting it"
            );
            self.cut_off();
            return;
        }
        if self.tx.send(message).is_err() {
            self.shared.closed.store(true, Ordering::Relaxed);
        }
    }

    /// Closes the connection of a peer that does not read, once.
    fn cut_off(&self) {
        let already = self.shared.closed.swap(true, Ordering::Relaxed);
        if let (false, Some(observer)) = (already, &self.shared.observer) {
            observer.peer_limited(PeerLimit::NotReading);
        }
        self.close();
    }

    /// Closes the connection: queued messages are dropped and both directions end.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.close.send_replace(true);
    }

    /// Resolves once the connection is closed.
    pub(crate) async fn closed(&self) {
        self.shared.closed().await
    }
}

impl OutboxReceiver {
    /// The next message, or `None` once the connection is closed.
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return None;
        }
        tokio::select! {
            message = self.rx.recv() => {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                if let Some(message) = &message {
                    self.shared.queued_bytes.fetch_sub(message.approximate_size(), Ordering::Relaxed);
                }
                message
            }
            _ = self.shared.closed() => None,
        }
    }
}
