//! A handle's event streams: every subscriber has its own queue, holding only what it has yet to
//! read.
//!
//! This replaces tokio's broadcast channel, which allocates its whole ring buffer when it is made
//! and keeps it for as long as the sender lives. With 256 slots that was about 30 KiB per stream
//! and document, for as long as the document stayed loaded. A client that once waited on two
//! streams of each of 10,000 documents kept about 600 MiB of empty slots. Faulting that memory in
//! was a fifth of the bench client's CPU.
//!
//! Here an idle subscriber costs a few words, a queue grows only as far as its reader falls
//! behind, and it is freed when the reader is dropped. A reader more than `capacity` events behind
//! skips the oldest, with a warning, as a lagging broadcast receiver does.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use futures::Stream;

/// Sends each event to every current subscriber.
#[derive(Debug)]
pub(crate) struct EventFanout<T> {
    capacity: usize,
    subscribers: Mutex<Vec<Weak<Mutex<Queue<T>>>>>,
}

/// One subscriber's unread events.
#[derive(Debug)]
struct Queue<T> {
    events: VecDeque<T>,
    /// Events dropped because the queue was full, not yet reported.
    missed: u64,
    /// The fanout is gone: no more events will come.
    closed: bool,
    waker: Option<Waker>,
}

/// The events sent after [`EventFanout::subscribe`], as a stream; it ends when the fanout is
/// dropped (the document's last handle and its worker are gone).
#[derive(Debug)]
pub(crate) struct Subscription<T> {
    queue: Arc<Mutex<Queue<T>>>,
}

/// Locks a mutex even if a thread panicked while holding it: a queue is consistent after every
/// statement that changes it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T: Clone> EventFanout<T> {
    /// A fanout whose subscribers each buffer at most `capacity` unread events.
    pub(crate) fn new(capacity: usize) -> Self {
        EventFanout {
            capacity: capacity.max(1),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    /// A stream of every event sent from now on.
    pub(crate) fn subscribe(&self) -> Subscription<T> {
        let queue = Arc::new(Mutex::new(Queue {
            events: VecDeque::new(),
            missed: 0,
            closed: false,
            waker: None,
        }));
        let mut subscribers = lock(&self.subscribers);
        subscribers.retain(|weak| weak.strong_count() > 0);
        subscribers.push(Arc::downgrade(&queue));
        Subscription { queue }
    }

    /// Queues `event` for every current subscriber; nothing happens when there are none.
    pub(crate) fn send(&self, event: T) {
        let mut wake = Vec::new();
        {
            let mut subscribers = lock(&self.subscribers);
            subscribers.retain(|weak| {
                let Some(queue) = weak.upgrade() else {
                    return false;
                };
                let mut queue = lock(&queue);
                if queue.events.len() >= self.capacity {
                    queue.events.pop_front();
                    queue.missed += 1;
                }
                queue.events.push_back(event.clone());
                wake.extend(queue.waker.take());
                true
            });
        }
        // Woken outside the locks: a waker may run its task's poll at once.
        wake.into_iter().for_each(Waker::wake);
    }

    /// How many subscribers exist (to skip work whose only use is an event).
    pub(crate) fn receiver_count(&self) -> usize {
        lock(&self.subscribers)
            .iter()
            .filter(|weak| weak.strong_count() > 0)
            .count()
    }
}

impl<T> Drop for EventFanout<T> {
    fn drop(&mut self) {
        let subscribers = std::mem::take(&mut *lock(&self.subscribers));
        for queue in subscribers.iter().filter_map(Weak::upgrade) {
            let waker = {
                let mut queue = lock(&queue);
                queue.closed = true;
                queue.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<T> Stream for Subscription<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut queue = lock(&self.queue);
        if queue.missed > 0 {
            tracing::warn!(
                missed = queue.missed,
                "event stream fell behind; skipped events"
            );
            queue.missed = 0;
        }
        if let Some(event) = queue.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if queue.closed {
            return Poll::Ready(None);
        }
        match &queue.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => queue.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};

    #[test]
    fn events_before_the_first_subscription_are_dropped_and_later_ones_delivered() {
        let fanout = EventFanout::new(4);
        fanout.send(1);
        assert_eq!(fanout.receiver_count(), 0);
        let mut subscription = fanout.subscribe();
        fanout.send(2);
        assert_eq!(subscription.next().now_or_never(), Some(Some(2)));
        assert_eq!(subscription.next().now_or_never(), None, "nothing more yet");
        assert_eq!(fanout.receiver_count(), 1);
        drop(subscription);
        assert_eq!(fanout.receiver_count(), 0);
    }

    #[test]
    fn every_subscriber_gets_every_event_in_order() {
        let fanout = EventFanout::new(8);
        let (mut a, mut b) = (fanout.subscribe(), fanout.subscribe());
        for n in 0..5 {
            fanout.send(n);
        }
        drop(fanout);
        let a: Vec<i32> = futures::executor::block_on((&mut a).collect());
        let b: Vec<i32> = futures::executor::block_on((&mut b).collect());
        assert_eq!(a, vec![0, 1, 2, 3, 4]);
        assert_eq!(b, a);
    }

    #[test]
    fn a_reader_that_falls_behind_skips_the_oldest_and_keeps_the_newest() {
        let fanout = EventFanout::new(3);
        let mut behind = fanout.subscribe();
        for n in 0..10 {
            fanout.send(n);
        }
        drop(fanout);
        let got: Vec<i32> = futures::executor::block_on((&mut behind).collect());
        assert_eq!(got, vec![7, 8, 9]);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_send_and_ends_when_the_fanout_goes() {
        let fanout = Arc::new(EventFanout::new(4));
        let mut subscription = fanout.subscribe();
        let sender = Arc::clone(&fanout);
        let reader = tokio::spawn(async move {
            let first = subscription.next().await;
            let end = subscription.next().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        sender.send("hello");
        drop(sender);
        drop(fanout);
        let (first, end) = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .expect("the reader finishes")
            .expect("the reader does not panic");
        assert_eq!(first, Some("hello"));
        assert_eq!(end, None);
    }

    #[test]
    fn dropped_subscribers_are_forgotten() {
        let fanout = EventFanout::new(4);
        for _ in 0..100 {
            drop(fanout.subscribe());
        }
        let _live = fanout.subscribe();
        fanout.send(1);
        assert_eq!(lock(&fanout.subscribers).len(), 1);
    }
}
