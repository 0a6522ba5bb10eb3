//! The in-memory network adapter passes the network conformance suite.

use std::time::Duration;

use tandem_core::network::conformance::{run_all, AdapterPair};
use tandem_repo::network::memory;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_adapter_passes_the_network_conformance_suite() {
    let suite = run_all(|| async {
        // Without its link, a pair's connection lasts until an end is dropped.
        let (left, right, _link) = memory::pair();
        let pair: AdapterPair = (Box::new(left), Box::new(right));
        pair
    });
    tokio::time::timeout(Duration::from_secs(60), suite)
        .await
        .expect("a check waited forever");
}

/// An adapter that alters one message in fifty, and one that reorders, fail the suite: it can
/// fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_fails_an_adapter_that_alters_or_reorders_messages() {
    use futures::StreamExt;
    use tandem_core::{Connections, LocalPeer, NetworkAdapter, NetworkError};

    struct Faulty {
        inner: memory::MemoryAdapter,
        reorder: bool,
    }

    #[async_trait::async_trait]
    impl NetworkAdapter for Faulty {
        async fn start(self: Box<Self>, local: LocalPeer) -> Result<Connections, NetworkError> {
            let reorder = self.reorder;
            let connections = Box::new(self.inner).start(local).await?;
            Ok(Box::pin(connections.map(move |mut connection| {
                let incoming =
                    std::mem::replace(&mut connection.incoming, Box::pin(futures::stream::empty()));
                connection.incoming = if reorder {
                    // Pairs swapped: 1, 0, 3, 2, ...
                    Box::pin(incoming.chunks(2).flat_map(|mut pair| {
                        pair.reverse();
                        futures::stream::iter(pair)
                    }))
                } else {
                    // Every fiftieth message arrives as the one before it.
                    let mut last = None;
                    Box::pin(incoming.enumerate().map(move |(n, message)| {
                        let arrived = match (&last, n % 50 == 49) {
                            (Some(previous), true) => Ok(Clone::clone(previous)),
                            _ => message,
                        };
                        if let Ok(message) = &arrived {
                            last = Some(message.clone());
                        }
                        arrived
                    }))
                };
                connection
            })))
        }
    }

    for reorder in [false, true] {
        let suite = tokio::spawn(async move {
            run_all(move || async move {
                let (left, right, _link) = memory::pair();
                let pair: AdapterPair = (
                    Box::new(Faulty {
                        inner: left,
                        reorder,
                    }),
                    Box::new(right),
                );
                pair
            })
            .await
        });
        let outcome = tokio::time::timeout(Duration::from_secs(60), suite)
            .await
            .expect("a check waited forever");
        assert!(
            outcome.is_err_and(|e| e.is_panic()),
            "the suite passed an adapter that {}",
            if reorder {
                "reorders"
            } else {
                "alters messages"
            }
        );
    }
}
