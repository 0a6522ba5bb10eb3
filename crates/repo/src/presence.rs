//! Presence on a document ([`DocHandle::presence`](crate::DocHandle::presence)): a task that
//! drives tandem-core's [`PresenceTracker`] with the document's ephemeral messages, the
//! application's broadcasts and the clock, and performs what it returns.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use tandem_core::PeerId;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::debug;

pub use tandem_core::presence::{PeerPresence, PresenceConfig, PresenceEvent};
use tandem_core::presence::{PresenceEffect, PresenceTracker};

use crate::event_fanout::EventFanout;
use crate::timer::deadline;
use crate::{DocHandle, HandleError};

/// Unread presence events a subscriber may fall behind by before it skips the oldest.
const EVENTS_BEHIND: usize = 1024;

enum Request {
    Broadcast(String, Value),
    Stop(oneshot::Sender<()>),
}

/// Our presence on a document, and everyone else's there. Made by
/// [`DocHandle::presence`](crate::DocHandle::presence); dropping it says goodbye.
pub struct Presence {
    requests: mpsc::UnboundedSender<Request>,
    peers: watch::Receiver<BTreeMap<PeerId, PeerPresence>>,
    events: Arc<EventFanout<PresenceEvent>>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("peers", &self.peers.borrow().len())
            .finish()
    }
}

impl Presence {
    pub(crate) fn start(
        handle: DocHandle,
        config: PresenceConfig,
        initial: Map<String, Value>,
    ) -> Self {
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (peers_tx, peers) = watch::channel(BTreeMap::new());
        let events = Arc::new(EventFanout::new(EVENTS_BEHIND));
        // Subscribed before the first snapshot goes out: nothing said in reply is missed.
        let heard = handle.ephemeral_messages();
        let (tracker, first) = PresenceTracker::start(config, initial, Instant::now().into_std());
        let task = PresenceTask {
            handle,
            tracker,
            peers: peers_tx,
            events: events.clone(),
        };
        tokio::spawn(task.run(first, heard, requests_rx));
        Presence {
            requests,
            peers,
            events,
        }
    }

    /// Sets one channel of our state and tells everyone.
    pub fn broadcast(&self, channel: impl Into<String>, value: Value) -> Result<(), HandleError> {
        self.requests
            .send(Request::Broadcast(channel.into(), value))
            .map_err(|_| HandleError::Shutdown)
    }

    /// The other peers present now, with their states.
    pub fn peers(&self) -> BTreeMap<PeerId, PeerPresence> {
        self.peers.borrow().clone()
    }

    /// The other peers present, as they change.
    pub fn peer_changes(&self) -> watch::Receiver<BTreeMap<PeerId, PeerPresence>> {
        self.peers.clone()
    }

    /// What the other peers' presence does, from now on.
    pub fn events(&self) -> impl Stream<Item = PresenceEvent> + Send + 'static {
        self.events.subscribe()
    }

    /// Says goodbye (everyone forgets us at once) and stops.
    pub async fn stop(self) {
        let (done, stopped) = oneshot::channel();
        if self.requests.send(Request::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

struct PresenceTask {
    handle: DocHandle,
    tracker: PresenceTracker,
    peers: watch::Sender<BTreeMap<PeerId, PeerPresence>>,
    events: Arc<EventFanout<PresenceEvent>>,
}

impl PresenceTask {
    async fn run(
        mut self,
        first: Vec<PresenceEffect>,
        heard: impl Stream<Item = crate::EphemeralEvent> + Send + 'static,
        mut requests: mpsc::UnboundedReceiver<Request>,
    ) {
        let mut heard = Box::pin(heard);
        self.perform(first);
        loop {
            let wake = self.tracker.next_timeout().map(Instant::from_std);
            let effects = tokio::select! {
                message = heard.next() => match message {
                    Some(message) => self.tracker.receive(
                        Instant::now().into_std(),
                        &message.sender_id,
                        &message.data,
                    ),
                    // The document's task is gone: nobody to talk to.
                    None => return,
                },
                request = requests.recv() => match request {
                    Some(Request::Broadcast(channel, value)) => {
                        self.tracker.broadcast(Instant::now().into_std(), channel, value)
                    }
                    Some(Request::Stop(done)) => {
                        let goodbye = self.tracker.stop(Instant::now().into_std());
                        self.perform(goodbye);
                        let _ = done.send(());
                        return;
                    }
                    // The `Presence` was dropped.
                    None => {
                        let goodbye = self.tracker.stop(Instant::now().into_std());
                        self.perform(goodbye);
                        return;
                    }
                },
                _ = deadline(wake) => self.tracker.tick(Instant::now().into_std()),
            };
            self.perform(effects);
        }
    }

    fn perform(&mut self, effects: Vec<PresenceEffect>) {
        let mut peers_changed = false;
        for effect in effects {
            match effect {
                PresenceEffect::Broadcast(bytes) => {
                    if self.handle.broadcast_encoded(bytes).is_err() {
                        debug!("the document's task is gone; presence not sent");
                    }
                }
                PresenceEffect::Event(event) => {
                    peers_changed |= !matches!(event, PresenceEvent::Heartbeat { .. });
                    self.events.send(event);
                }
            }
        }
        if peers_changed {
            let now = self.tracker.peers().clone();
            self.peers.send_replace(now);
        }
    }
}
