//! Prometheus metrics (`GET /metrics`), with `prometheus-client`: what the server serves, what
//! its sockets carry, what storage costs, and what it turns away. Every family is registered at
//! start-up, so each is exported (at zero) before it first moves.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tandem_core::storage::StoredDocument;
use tandem_core::{DocumentId, StorageAdapter, StorageError, StorageKey};
use tandem_net_ws::SocketObserver;
use tandem_repo::{Repo, RepoEvent};
use tokio::sync::Semaphore;

type Labels = Vec<(&'static str, &'static str)>;

/// Every metric the server exports.
pub(crate) struct Metrics {
    registry: Mutex<Registry>,
    /// Set from `slots` when rendered: a permit is taken for each client served.
    connections: Gauge,
    slots: Arc<Semaphore>,
    max_connections: usize,
    documents_loaded: Gauge,
    documents_evicted: Counter,
    messages_received: Family<Labels, Counter>,
    messages_sent: Family<Labels, Counter>,
    bytes_received: Counter,
    bytes_sent: Counter,
    storage_save_seconds: Histogram,
    storage_load_seconds: Histogram,
    durable_ack_wait_seconds: Histogram,
    connections_rejected: Family<Labels, Counter>,
    storage_errors: Family<Labels, Counter>,
    storage_failing: Gauge,
    changes_refused: Family<Labels, Counter>,
    connections_cut_off: Family<Labels, Counter>,
    ephemeral_dropped: Counter,
    cluster_nodes: Gauge,
    cluster_links: Gauge,
    /// While saves fail (for `/readyz`).
    storage_outage: Mutex<Option<StorageOutage>>,
    /// The series of `messages_received` and `messages_sent` for each message type, looked up
    /// without the family's label allocation and lock on every message.
    by_type: Vec<(&'static str, Counter, Counter)>,
}

/// Saves failing, as the repo reported them.
struct StorageOutage {
    since: Instant,
    /// When a failure was last reported: reports come at least this often while saves fail.
    heard: Instant,
    error: String,
}

/// An outage not heard of for this long is over: no save has failed for a while (the repo
/// reports failures at least every `SUMMARY_EVERY` while they go on, and retries within 5 s).
const OUTAGE_SILENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Why an upgrade was turned away.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rejection {
    Auth,
    Limit,
}

/// Every message type, so that each series exists from the start.
const MESSAGE_TYPES: [&str; 9] = [
    "join",
    "peer",
    "sync",
    "request",
    "doc-unavailable",
    "ephemeral",
    "remote-subscription-change",
    "remote-heads-changed",
    "error",
];

impl Metrics {
    /// The metrics of a server whose clients each hold one of `max_connections` `slots`.
    pub(crate) fn new(slots: Arc<Semaphore>, max_connections: usize) -> Arc<Metrics> {
        let seconds = || Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        let mut metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("tandem")),
            connections: Gauge::default(),
            slots,
            max_connections,
            documents_loaded: Gauge::default(),
            documents_evicted: Counter::default(),
            messages_received: Family::default(),
            messages_sent: Family::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            storage_save_seconds: seconds(),
            storage_load_seconds: seconds(),
            durable_ack_wait_seconds: seconds(),
            connections_rejected: Family::default(),
            storage_errors: Family::default(),
            storage_failing: Gauge::default(),
            changes_refused: Family::default(),
            connections_cut_off: Family::default(),
            ephemeral_dropped: Counter::default(),
            cluster_nodes: Gauge::default(),
            cluster_links: Gauge::default(),
            storage_outage: Mutex::new(None),
            by_type: Vec::new(),
        };
        // Created now, so that each series is exported at zero before it first moves.
        for kind in MESSAGE_TYPES {
            let received = metrics
                .messages_received
                .get_or_create(&vec![("type", kind)])
                .clone();
            let sent = metrics
                .messages_sent
                .get_or_create(&vec![("type", kind)])
                .clone();
            metrics.by_type.push((kind, received, sent));
        }
        for reason in ["not_reading", "ephemeral_flood"] {
            let _ = metrics
                .connections_cut_off
                .get_or_create(&vec![("reason", reason)]);
        }
        for reason in ["auth", "limit", "frame_size", "protocol"] {
            let _ = metrics
                .connections_rejected
                .get_or_create(&vec![("reason", reason)]);
        }
        for reason in ["change", "document"] {
            let _ = metrics
                .changes_refused
                .get_or_create(&vec![("reason", reason)]);
        }
        for operation in ["save", "load", "remove"] {
            let _ = metrics
                .storage_errors
                .get_or_create(&vec![("operation", operation)]);
        }
        {
            let mut registry = metrics.lock_registry();
            registry.register(
                "storage_errors",
                "Storage operations that failed, by operation",
                metrics.storage_errors.clone(),
            );
            registry.register(
                "connections_cut_off",
                "Connections closed by a limit: a client that stopped reading (--max-outbound-bytes), or one flooding ephemeral messages",
                metrics.connections_cut_off.clone(),
            );
            registry.register(
                "ephemeral_dropped",
                "Ephemeral messages dropped for going over their connection's rate",
                metrics.ephemeral_dropped.clone(),
            );
            registry.register(
                "changes_refused",
                "Clients' changes refused for their size: a change too large, or a document that would grow too large",
                metrics.changes_refused.clone(),
            );
            registry.register(
                "cluster_nodes",
                "Other nodes of the cluster alive now (by the database's registry; 0 outside a cluster)",
                metrics.cluster_nodes.clone(),
            );
            registry.register(
                "cluster_links",
                "Other live nodes this node is linked with now, either way (0 outside a cluster)",
                metrics.cluster_links.clone(),
            );
            registry.register(
                "storage_failing",
                "1 while saves fail (they are retried with backoff; nothing unsaved is acknowledged)",
                metrics.storage_failing.clone(),
            );
            registry.register(
                "connections",
                "WebSocket clients served now",
                metrics.connections.clone(),
            );
            registry.register(
                "documents_loaded",
                "Documents in memory now",
                metrics.documents_loaded.clone(),
            );
            registry.register(
                "documents_evicted",
                "Documents that left memory",
                metrics.documents_evicted.clone(),
            );
            registry.register(
                "messages_received",
                "Messages read from clients, by type",
                metrics.messages_received.clone(),
            );
            registry.register(
                "messages_sent",
                "Messages written to clients, by type",
                metrics.messages_sent.clone(),
            );
            registry.register(
                "bytes_received",
                "Bytes of messages read from clients",
                metrics.bytes_received.clone(),
            );
            registry.register(
                "bytes_sent",
                "Bytes of messages written to clients",
                metrics.bytes_sent.clone(),
            );
            registry.register(
                "storage_save_seconds",
                "Time a storage write took",
                metrics.storage_save_seconds.clone(),
            );
            registry.register(
                "storage_load_seconds",
                "Time a storage read took",
                metrics.storage_load_seconds.clone(),
            );
            registry.register(
                "durable_ack_wait_seconds",
                "Time from a client's change arriving to its acknowledgement (its save landing)",
                metrics.durable_ack_wait_seconds.clone(),
            );
            registry.register(
                "connections_rejected",
                "Clients turned away or cut off for what they sent: no or a bad token (auth), --max-connections (limit), a frame over --max-frame-size (frame_size), anything else against the protocol (protocol)",
                metrics.connections_rejected.clone(),
            );
        }
        Arc::new(metrics)
    }

    fn lock_registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many other nodes of the cluster are alive.
    pub(crate) fn cluster_nodes(&self, count: usize) {
        self.cluster_nodes
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// With how many other live nodes this node is linked.
    pub(crate) fn cluster_links(&self, count: usize) {
        self.cluster_links
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        // Lets an outage nobody reports any more end.
        let _ = self.storage_outage();
        let served = self
            .max_connections
            .saturating_sub(self.slots.available_permits());
        self.connections
            .set(i64::try_from(served).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.lock_registry());
        text
    }

    pub(crate) fn rejected(&self, why: Rejection) {
        let reason = match why {
            Rejection::Auth => "auth",
            Rejection::Limit => "limit",
        };
        self.connections_rejected
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Follows documents into and out of memory until the repo stops.
    pub(crate) fn follow(self: &Arc<Self>, repo: &Repo) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        let mut events = Box::pin(repo.events());
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    RepoEvent::Added(_) => {
                        metrics.documents_loaded.inc();
                    }
                    RepoEvent::Unloaded(_) => {
                        metrics.documents_loaded.dec();
                        metrics.documents_evicted.inc();
                    }
                    RepoEvent::Unavailable(_) | RepoEvent::Deleted(_) => {}
                }
            }
        })
    }
}

impl tandem_repo::RepoObserver for Metrics {
    fn durable_acknowledgement(&self, waited: std::time::Duration) {
        self.durable_ack_wait_seconds.observe(waited.as_secs_f64());
    }

    fn change_refused(&self, over: &tandem_core::untrusted::OverQuota) {
        let reason = match over {
            tandem_core::untrusted::OverQuota::Change { .. } => "change",
            tandem_core::untrusted::OverQuota::Document { .. } => "document",
        };
        self.changes_refused
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    fn peer_limited(&self, limit: tandem_repo::PeerLimit) {
        let cut_off = |reason: &'static str| {
            self.connections_cut_off
                .get_or_create(&vec![("reason", reason)])
                .inc();
        };
        match limit {
            tandem_repo::PeerLimit::EphemeralDropped => {
                self.ephemeral_dropped.inc();
            }
            tandem_repo::PeerLimit::EphemeralFloodCutOff => cut_off("ephemeral_flood"),
            tandem_repo::PeerLimit::NotReading => cut_off("not_reading"),
            _ => {}
        }
    }

    fn storage_failing(&self, error: Option<&str>) {
        let now = Instant::now();
        let mut outage = self.lock_outage();
        *outage = error.map(|error| StorageOutage {
            since: outage.as_ref().map_or(now, |o| o.since),
            heard: now,
            error: error.to_owned(),
        });
        self.storage_failing.set(i64::from(outage.is_some()));
    }
}

impl Metrics {
    fn lock_outage(&self) -> std::sync::MutexGuard<'_, Option<StorageOutage>> {
        self.storage_outage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Why saves fail, and since how long, while they do.
    pub(crate) fn storage_outage(&self) -> Option<String> {
        let mut outage = self.lock_outage();
        if outage
            .as_ref()
            .is_some_and(|o| o.heard.elapsed() > OUTAGE_SILENCE)
        {
            *outage = None;
            self.storage_failing.set(0);
        }
        outage.as_ref().map(|o| {
            format!(
                "saves fail since {}s ago: {}",
                o.since.elapsed().as_secs(),
                o.error
            )
        })
    }

    fn storage_error<T>(&self, operation: &'static str, result: &Result<T, StorageError>) {
        if result.is_err() {
            self.storage_errors
                .get_or_create(&vec![("operation", operation)])
                .inc();
        }
    }
}

impl Metrics {
    /// The series of `kind` in `family` (`received` picks the first of the pair).
    fn count(&self, family: &Family<Labels, Counter>, kind: &'static str, received: bool) {
        match self.by_type.iter().find(|(k, _, _)| *k == kind) {
            Some((_, r, s)) => {
                if received { r } else { s }.inc();
            }
            None => {
                family.get_or_create(&vec![("type", kind)]).inc();
            }
        }
    }
}

impl SocketObserver for Metrics {
    fn received(&self, kind: &'static str, bytes: usize) {
        self.count(&self.messages_received, kind, true);
        self.bytes_received.inc_by(bytes as u64);
    }

    fn sent(&self, kind: &'static str, bytes: usize) {
        self.count(&self.messages_sent, kind, false);
        self.bytes_sent.inc_by(bytes as u64);
    }

    fn fault(&self, fault: tandem_net_ws::SocketFault) {
        let reason = match fault {
            tandem_net_ws::SocketFault::FrameTooLarge => "frame_size",
            _ => "protocol",
        };
        self.connections_rejected
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }
}

/// A storage adapter that times every read and write into the metrics.
pub(crate) struct MeteredStorage {
    pub(crate) inner: Arc<dyn StorageAdapter>,
    pub(crate) metrics: Arc<Metrics>,
}

impl MeteredStorage {
    /// Runs a read, timing it and counting its failure.
    async fn timed_load<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let started = Instant::now();
        let loaded = read.await;
        self.metrics
            .storage_load_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.storage_error("load", &loaded);
        loaded
    }
}

#[async_trait]
impl StorageAdapter for MeteredStorage {
    async fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.timed_load(self.inner.load(key)).await
    }

    async fn save(&self, key: &StorageKey, value: Vec<u8>) -> Result<(), StorageError> {
        let started = Instant::now();
        let saved = self.inner.save(key, value).await;
        self.metrics
            .storage_save_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.storage_error("save", &saved);
        saved
    }

    async fn remove(&self, key: &StorageKey) -> Result<(), StorageError> {
        let removed = self.inner.remove(key).await;
        self.metrics.storage_error("remove", &removed);
        removed
    }

    async fn load_range(
        &self,
        prefix: &StorageKey,
    ) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        self.timed_load(self.inner.load_range(prefix)).await
    }

    async fn load_document(
        &self,
        document_id: &DocumentId,
    ) -> Result<StoredDocument, StorageError> {
        self.timed_load(self.inner.load_document(document_id)).await
    }

    async fn remove_range(&self, prefix: &StorageKey) -> Result<(), StorageError> {
        let removed = self.inner.remove_range(prefix).await;
        self.metrics.storage_error("remove", &removed);
        removed
    }
}
