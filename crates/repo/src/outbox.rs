//! The outgoing queue of one connection, shared by every document worker that talks to the peer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tandem_core::{Message, PeerId, PeerMetadata};
use tokio::sync::{mpsc, watch};

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

#[derive(Debug)]
pub(crate) struct OutboxShared {
    queued: AtomicUsize,
    closed: AtomicBool,
    /// Tells the connection's tasks to stop.
    close: watch::Sender<bool>,
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

pub(crate) fn outbox() -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(OutboxShared {
        queued: AtomicUsize::new(0),
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
            self.close();
            return;
        }
        if self.tx.send(message).is_err() {
            self.shared.closed.store(true, Ordering::Relaxed);
        }
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
                message
            }
            _ = self.shared.closed() => None,
        }
    }
}
