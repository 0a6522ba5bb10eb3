//! A connection's two tasks: the writer drains its outbox into the transport, the reader feeds
//! its frames to the hub.
//!
//! Back-pressure is per connection: the reader takes one of [`IN_FLIGHT_PER_CONNECTION`]
//! permits for each message, and the permit travels with the message until the document's task
//! takes it in. A peer that floods one document waits for that document; nobody else does, and
//! the hub never waits for a document.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tandem_core::hub::ConnectionId;
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, warn};

use crate::channels::HubEvent;
use crate::outbox::{OutboxReceiver, PeerLink};

/// Messages from one connection that may be on their way to documents at once.
pub(crate) const IN_FLIGHT_PER_CONNECTION: usize = 1024;

/// Drains a connection's outbox into its sink; closes the sink when the outbox closes.
pub(crate) async fn write_connection(
    mut outbox: OutboxReceiver,
    mut sink: tandem_core::MessageSink,
) {
    while let Some(message) = outbox.recv().await {
        if let Err(error) = sink.send(message).await {
            debug!(%error, "connection write failed");
            break;
        }
    }
    let _ = sink.close().await;
}

/// Feeds a connection's messages to the hub until it ends or is closed.
pub(crate) async fn read_connection(
    id: ConnectionId,
    link: PeerLink,
    mut incoming: tandem_core::MessageStream,
    hub: mpsc::Sender<HubEvent>,
) {
    let closed = link.outbox.clone();
    let allowance = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION));
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            _ = closed.closed() => None,
        };
        match next {
            Some(Ok(message)) => {
                let permit = tokio::select! {
                    permit = allowance.clone().acquire_owned() => permit,
                    _ = closed.closed() => break,
                };
                let Ok(permit) = permit else { break };
                if hub
                    .send(HubEvent::Incoming(id, message, permit))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Err(error)) => {
                warn!(peer = %link.peer_id, %error, "connection failed");
                break;
            }
            None => break,
        }
    }
    let _ = hub.send(HubEvent::Disconnected(id)).await;
}
