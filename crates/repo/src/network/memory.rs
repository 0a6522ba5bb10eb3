//! In-process links between repos, for tests and for applications that run several repos in one
//! process.
//!
//! [`pair`] gives two adapters and the [`Link`] that joins them: give one adapter to each repo
//! and they connect as soon as both have started. [`Link::cut`] drops the connection (both repos
//! see the peer leave) and [`Link::restore`] reconnects it (both see it join again, as after a
//! network outage). Messages travel as values through bounded channels, never encoded.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::StreamExt;
use tandem_core::{Connection, Connections, LocalPeer, NetworkAdapter, NetworkError};
use tokio::sync::watch;

/// Messages in flight per direction before the sender waits.
const CAPACITY: usize = 1024;

/// One end of an in-memory link; a [`NetworkAdapter`].
#[derive(Debug)]
pub struct MemoryAdapter {
    link: Link,
    side: Side,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// Controls a link made by [`pair`]. Clones control the same link.
#[derive(Debug, Clone)]
pub struct Link {
    shared: Arc<Mutex<LinkState>>,
}

#[derive(Debug)]
struct LinkState {
    left: Option<Started>,
    right: Option<Started>,
    up: bool,
    /// Set to `true` to end the current connection.
    cut: watch::Sender<bool>,
}

#[derive(Debug)]
struct Started {
    local: LocalPeer,
    connections: mpsc::UnboundedSender<Connection>,
}

/// Two adapters joined by a link that starts up.
///
/// ```
/// let (left, right, link) = tandem_repo::network::memory::pair();
/// # drop((left, right, link));
/// ```
pub fn pair() -> (MemoryAdapter, MemoryAdapter, Link) {
    let link = Link {
        shared: Arc::new(Mutex::new(LinkState {
            left: None,
            right: None,
            up: true,
            cut: watch::channel(false).0,
        })),
    };
    (
        MemoryAdapter {
            link: link.clone(),
            side: Side::Left,
        },
        MemoryAdapter {
            link: link.clone(),
            side: Side::Right,
        },
        link,
    )
}

impl Link {
    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the current connection; both sides see the peer disconnect. Nothing reconnects until
    /// [`restore`](Link::restore).
    pub fn cut(&self) {
        let mut state = self.state();
        state.up = false;
        state.cut.send_replace(true);
    }

    /// Reconnects a cut link (a no-op if it is up).
    pub fn restore(&self) {
        let mut state = self.state();
        if state.up {
            return;
        }
        state.up = true;
        state.cut = watch::channel(false).0;
        connect(&mut state);
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.state().up
    }
}

/// Hands each started side its end of a fresh connection, if both have started and the link is
/// up.
fn connect(state: &mut LinkState) {
    let (Some(left), Some(right)) = (&state.left, &state.right) else {
        return;
    };
    if !state.up {
        return;
    }
    let (mut at_left, mut at_right) =
        Connection::in_memory_pair(&left.local, &right.local, CAPACITY);
    // Both incoming streams end when the link is cut; the repos then drop their sinks.
    for end in [&mut at_left, &mut at_right] {
        let mut cut = state.cut.subscribe();
        let incoming = std::mem::replace(&mut end.incoming, Box::pin(futures::stream::empty()));
        end.incoming = Box::pin(incoming.take_until(async move {
            // A dropped `Link` can no longer cut: the connection then lasts.
            if cut.wait_for(|cut| *cut).await.is_err() {
                futures::future::pending::<()>().await;
            }
        }));
    }
    let _ = left.connections.unbounded_send(at_left);
    let _ = right.connections.unbounded_send(at_right);
}

#[async_trait]
impl NetworkAdapter for MemoryAdapter {
    async fn start(self: Box<Self>, local: LocalPeer) -> Result<Connections, NetworkError> {
        let (tx, rx) = mpsc::unbounded();
        let mut state = self.link.state();
        let started = Some(Started {
            local,
            connections: tx,
        });
        match self.side {
            Side::Left => state.left = started,
            Side::Right => state.right = started,
        }
        connect(&mut state);
        Ok(Box::pin(rx))
    }
}
