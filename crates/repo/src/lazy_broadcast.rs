//! A broadcast channel that allocates its buffer on the first subscription.
//!
//! Every handle offers three event streams, and tokio's broadcast channel allocates its whole
//! ring buffer when it is made: with 256 slots each, that was about 90 KiB per document, for
//! streams most documents on a server never have a subscriber for. Sending with no subscriber
//! yet does nothing, exactly as a broadcast send with no receivers does.

use std::sync::OnceLock;

use tokio::sync::broadcast;

/// A [`broadcast`] sender made on first use.
#[derive(Debug)]
pub(crate) struct LazyBroadcast<T> {
    capacity: usize,
    sender: OnceLock<broadcast::Sender<T>>,
}

impl<T: Clone> LazyBroadcast<T> {
    /// A channel whose buffer will hold `capacity` events once someone subscribes.
    pub(crate) fn new(capacity: usize) -> Self {
        LazyBroadcast {
            capacity,
            sender: OnceLock::new(),
        }
    }

    /// A receiver of every event sent from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<T> {
        self.sender
            .get_or_init(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Sends to the current subscribers; nothing happens when there are none.
    pub(crate) fn send(&self, event: T) {
        if let Some(sender) = self.sender.get() {
            let _ = sender.send(event);
        }
    }

    /// How many receivers exist (to skip work whose only use is an event).
    pub(crate) fn receiver_count(&self) -> usize {
        self.sender
            .get()
            .map_or(0, broadcast::Sender::receiver_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_before_the_first_subscription_are_dropped_and_later_ones_delivered() {
        let channel = LazyBroadcast::new(4);
        channel.send(1);
        assert_eq!(channel.receiver_count(), 0);
        let mut receiver = channel.subscribe();
        channel.send(2);
        assert_eq!(receiver.try_recv().ok(), Some(2));
        assert_eq!(channel.receiver_count(), 1);
        drop(receiver);
        assert_eq!(channel.receiver_count(), 0);
    }
}
