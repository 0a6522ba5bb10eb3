//! A handle's event streams: every subscriber has its own queue, holding only what it has yet to
//! read.
//!
//! This replaces tokio's broadcast channel, which allocates its whole ring buffer when it is made
//! and keeps it for as long as the sender lives: with 256 slots, about 30 KiB per stream and
//! document, for as long as the document stayed loaded. The bench's client, which waits on two
//! streams of each of its 10,000 documents, held about 400 MiB in them (its peak went from 975 to
//! 575 MiB).
//!
//! Here an idle subscriber costs a few words. A queue grows only as far as its reader falls
//! behind, gives a large buffer back once emptied, and is freed when the reader is dropped. A
//! reader more than `capacity` events behind skips the oldest, with a warning, as a lagging
//! broadcast receiver does.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use futures::Stream;

/// A queue emptied with more room than this gives its buffer back.
const SHRINK_ABOVE: usize = 16;

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

    /// How many subscribers exist (to skip work whose only use is an event). Forgets the ones
    /// that are gone, so that a document nobody sends on does not keep their entries.
    pub(crate) fn receiver_count(&self) -> usize {
        let mut subscribers = lock(&self.subscribers);
        subscribers.retain(|weak| weak.strong_count() > 0);
        subscribers.len()
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
        // The warning and the dropping of a replaced waker happen after the lock is released.
        let mut replaced = None;
        let (missed, ready) = {
            let mut queue = lock(&self.queue);
            let missed = std::mem::take(&mut queue.missed);
            let ready = if let Some(event) = queue.events.pop_front() {
                if queue.events.is_empty() && queue.events.capacity() > SHRINK_ABOVE {
                    // A reader that fell far behind once does not keep the large buffer.
                    queue.events = VecDeque::new();
                }
                Poll::Ready(Some(event))
            } else if queue.closed {
                Poll::Ready(None)
            } else {
                if !queue
                    .waker
                    .as_ref()
                    .is_some_and(|waker| waker.will_wake(cx.waker()))
                {
                    replaced = queue.waker.replace(cx.waker().clone());
                }
                Poll::Pending
            };
            (missed, ready)
        };
        if missed > 0 {
            tracing::warn!(missed, "event stream fell behind; skipped events");
        }
        drop(replaced);
        ready
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

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl futures::task::ArcWake for CountingWaker {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_pending_reader_is_woken_by_a_send_and_by_the_end() {
        let counter = Arc::new(CountingWaker::default());
        let waker = futures::task::waker(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let woken = || counter.0.load(std::sync::atomic::Ordering::SeqCst);
        let fanout = EventFanout::new(4);
        let mut subscription = fanout.subscribe();
        assert!(Pin::new(&mut subscription).poll_next(&mut cx).is_pending());
        assert_eq!(woken(), 0);
        fanout.send(7);
        assert_eq!(woken(), 1, "a send wakes the waiting reader");
        assert_eq!(
            Pin::new(&mut subscription).poll_next(&mut cx),
            Poll::Ready(Some(7))
        );
        assert!(Pin::new(&mut subscription).poll_next(&mut cx).is_pending());
        drop(fanout);
        assert_eq!(woken(), 2, "the end wakes it too");
        assert_eq!(
            Pin::new(&mut subscription).poll_next(&mut cx),
            Poll::Ready(None)
        );
    }

    #[test]
    fn an_emptied_queue_gives_back_a_large_buffer() {
        let fanout = EventFanout::new(256);
        let mut behind = fanout.subscribe();
        for n in 0..200 {
            fanout.send(n);
        }
        let got: Vec<i32> = (0..200)
            .map(|_| behind.next().now_or_never().flatten().expect("queued"))
            .collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert_eq!(lock(&behind.queue).events.capacity(), 0);
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
        let fanout: EventFanout<i32> = EventFanout::new(4);
        for _ in 0..100 {
            drop(fanout.subscribe());
        }
        let _live = fanout.subscribe();
        assert_eq!(lock(&fanout.subscribers).len(), 1, "subscribe prunes");
        let gone = fanout.subscribe();
        drop(gone);
        assert_eq!(fanout.receiver_count(), 1);
        assert_eq!(lock(&fanout.subscribers).len(), 1, "counting prunes");
    }
}
