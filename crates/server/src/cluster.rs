//! Cluster mode: several servers on one PostgreSQL database. Each node says it is alive in the
//! database every second, learns there which other nodes are, and links to them as peers over
//! the same sync protocol its clients speak, authenticated with a token signed with the
//! cluster's secret. Of two nodes, the one with the smaller peer id dials the other, so each
//! pair has one link. Documents travel between nodes only where both hold them (the core's
//! `Grant::cluster_node` rules); everything else meets in the database.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tandem_core::{Grant, PeerId};
use tandem_net_ws::{Admission, ClientConfig, ConnectionState, Identity, WebSocketClient};
use tandem_repo::network::NetworkId;
use tandem_repo::Repo;
use tandem_storage_postgres::{LiveNode, NodeRegistry, PostgresError};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// How often a node says it is alive and looks at the others.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node silent this long is taken for dead.
pub(crate) const ALIVE_WITHIN: Duration = Duration::from_secs(5);
/// How long a link token is good for: a link that drops after that fails to reconnect with it,
/// gives up, and is made again with a fresh one by the next heartbeats.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The audience of link tokens: a client token signed with the same secret is not one.
const AUDIENCE: &str = "tandem-cluster";

/// `advertise` with port 0 replaced by `port` (the port bound for `--port 0`).
pub(crate) fn with_port(advertise: &str, port: u16) -> String {
    let Ok(uri) = advertise.parse::<hyper::Uri>() else {
        return advertise.to_owned();
    };
    match (uri.port_u16(), uri.host(), uri.scheme_str()) {
        (Some(0), Some(host), Some(scheme)) => {
            let path = uri.path_and_query().map_or("", |p| p.as_str());
            let path = if path == "/" && !advertise.ends_with('/') {
                ""
            } else {
                path
            };
            format!("{scheme}://{host}:{port}{path}")
        }
        _ => advertise.to_owned(),
    }
}

/// Signs and checks the tokens nodes present to each other.
pub(crate) struct ClusterKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The same checks without the signature's or the expiry's: what tells a link token (of
    /// this cluster or of one with another secret) from a client's, which is most tokens.
    shape: Validation,
    /// This node: a token must be addressed to it.
    me: PeerId,
}

/// What [`ClusterKey::check`] makes of a bearer token.
#[derive(Debug)]
pub(crate) enum LinkCheck {
    /// A link from another node of the cluster.
    Node(Admission),
    /// A link token this node refuses: signed with another secret, expired, or for another
    /// node. Refused outright rather than taken for a client's token, so that a misconfigured
    /// cluster fails loudly.
    Refused(String),
    /// Not a link token: the connection is a client's.
    NotALink,
}

/// A link token: from node `sub`, to node `to`, until `exp`.
#[derive(Debug, Serialize, Deserialize)]
struct LinkClaims {
    sub: String,
    to: String,
    aud: String,
    exp: u64,
}

impl ClusterKey {
    /// The key of node `me` for the cluster's `secret`.
    pub(crate) fn new(secret: &str, me: PeerId) -> ClusterKey {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let mut shape = validation.clone();
        shape.insecure_disable_signature_validation();
        shape.validate_exp = false;
        ClusterKey {
            shape,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            me,
        }
    }

    /// A token for this node to link to node `to` with: good at that node only, so that one
    /// seen on the way (or sent to a stale address) opens nothing else.
    fn token_to(&self, to: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = LinkClaims {
            sub: self.me.to_string(),
            to: to.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: (now + TOKEN_LIFETIME).as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// What a bearer token says about a connection: a link from another node (admitted as that
    /// node), a link token this node cannot accept, or no link token at all (a client's).
    pub(crate) fn check(&self, token: &str) -> LinkCheck {
        // Read unverified only to tell a link token from a client's (one parse, no signature,
        // for a client): nothing it says is trusted before the check below.
        if jsonwebtoken::decode::<LinkClaims>(token, &self.decoding, &self.shape).is_err() {
            return LinkCheck::NotALink;
        }
        match jsonwebtoken::decode::<LinkClaims>(token, &self.decoding, &self.validation) {
            Ok(data) if data.claims.to == self.me.as_str() => LinkCheck::Node(Admission {
                identity: Some(Identity::Exactly(PeerId::from(data.claims.sub))),
                grant: Grant::cluster_node(),
                // Checked at the upgrade only: a link lasts as long as both nodes do.
                expires_at: None,
            }),
            Ok(data) => LinkCheck::Refused(format!(
                "a link token for node {}, not this one (a stale address in the registry?)",
                data.claims.to
            )),
            Err(error) => LinkCheck::Refused(format!(
                "a link token that does not verify ({error}): is --cluster-secret the same on \
                 every node?"
            )),
        }
    }
}

/// A node's part in the cluster: its heartbeat and its links.
#[derive(Debug)]
pub(crate) struct Cluster {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    registry: NodeRegistry,
}

impl Cluster {
    /// Starts beating and linking at once.
    pub(crate) fn start(
        repo: Repo,
        registry: NodeRegistry,
        key: Arc<ClusterKey>,
        metrics: Arc<Metrics>,
    ) -> Cluster {
        let (stop, stopped) = watch::channel(false);
        let (live, live_ids) = watch::channel(BTreeSet::new());
        tokio::spawn(count_links(repo.clone(), live_ids, metrics.clone()));
        let task = tokio::spawn(run(repo, registry.clone(), key, metrics, live, stopped));
        Cluster {
            stop,
            task,
            registry,
        }
    }

    /// Leaves the cluster: no more heartbeats, and the entry goes, so the others drop this
    /// node at once rather than after its silence.
    pub(crate) async fn leave(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Err(error) = self.registry.leave().await {
            warn!(%error, "could not remove this node from the cluster's registry");
        }
    }
}

/// A link this node dialled.
struct Link {
    advertise: String,
    network: NetworkId,
    state: watch::Receiver<ConnectionState>,
}

async fn run(
    repo: Repo,
    registry: NodeRegistry,
    key: Arc<ClusterKey>,
    metrics: Arc<Metrics>,
    live_ids: watch::Sender<BTreeSet<String>>,
    mut stopped: watch::Receiver<bool>,
) {
    let me = repo.peer_id().clone();
    let mut links: BTreeMap<String, Link> = BTreeMap::new();
    let mut beats = tokio::time::interval(HEARTBEAT);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut beating = Beating::default();
    loop {
        tokio::select! {
            _ = beats.tick() => {}
            _ = stopped.changed() => break,
        }
        // Bounded below the silence that makes others drop this node.
        let beat = tokio::time::timeout(HEARTBEAT * 3, registry.heartbeat()).await;
        let live = match beat.unwrap_or_else(|_| Err(PostgresError::TimedOut)) {
            Ok(live) => {
                if failing {
                    info!("cluster heartbeat works again");
                    failing = false;
                }
                live
            }
            Err(error) => {
                // The links stay as they are: a database outage is not a node's death. The
                // other nodes drop this one if it lasts (they see it silent).
                beating.failed();
                if !failing {
                    warn!(%error, "cluster heartbeat failed; retrying every second");
                    failing = true;
                }
                continue;
            }
        };
        metrics.cluster_nodes(live.len());
        live_ids.send_if_modified(|ids| {
            let now: BTreeSet<String> = live.iter().map(|node| node.id.clone()).collect();
            let changed = *ids != now;
            *ids = now;
            changed
        });
        let may_drop = beating.succeeded(tokio::time::Instant::now().into_std());
        if may_drop {
            // Links this node accepted are the other side's to drop, but a node that stopped
            // beating cannot: the repo closes them.
            let alive = live.iter().map(|node| PeerId::from(node.id.as_str()));
            let _ = repo.cluster_nodes_alive(alive).await;
        }
        reconcile(&repo, &me, &key, &live, may_drop, &mut links).await;
    }
    for (_, link) in links {
        let _ = repo.remove_network(link.network).await;
    }
}

/// Whether this node may take the registry's word that a node is gone: only once its own
/// heartbeat has worked for the whole silence window. Until then (after the database was
/// unreachable, or at start), other nodes' last beats may be old only because nobody could
/// write one, and dropping them would cut every link just as the database returns.
#[derive(Debug, Default)]
struct Beating {
    since: Option<std::time::Instant>,
}

impl Beating {
    /// A heartbeat failed.
    fn failed(&mut self) {
        self.since = None;
    }

    /// A heartbeat worked at `now`: whether nodes the registry does not list may be dropped.
    fn succeeded(&mut self, now: std::time::Instant) -> bool {
        let since = *self.since.get_or_insert(now);
        now.duration_since(since) >= ALIVE_WITHIN
    }
}

/// Keeps `tandem_cluster_links` at the number of live nodes this node is linked with (either
/// way), as peers come and go; ends with the heartbeat (when `live_ids` closes).
async fn count_links(
    repo: Repo,
    mut live_ids: watch::Receiver<BTreeSet<String>>,
    metrics: Arc<Metrics>,
) {
    let mut peers = repo.peer_changes();
    loop {
        let linked = {
            let ids = live_ids.borrow_and_update();
            let peers = peers.borrow_and_update();
            peers
                .keys()
                .filter(|peer| ids.contains(peer.as_str()))
                .count()
        };
        metrics.cluster_links(linked);
        tokio::select! {
            changed = live_ids.changed() => if changed.is_err() { return },
            changed = peers.changed() => if changed.is_err() { return },
        }
    }
}

/// Dials the live nodes this node should dial and drops the links whose link gave up, and,
/// if `may_drop`, those of nodes no longer alive.
async fn reconcile(
    repo: &Repo,
    me: &PeerId,
    key: &ClusterKey,
    live: &[LiveNode],
    may_drop: bool,
    links: &mut BTreeMap<String, Link>,
) {
    let ours: BTreeMap<&str, &LiveNode> = live
        .iter()
        .filter(|node| node.id.as_str() > me.as_str())
        .map(|node| (node.id.as_str(), node))
        .collect();
    let stale: Vec<String> = links
        .iter()
        .filter(|(id, link)| {
            let gave_up = matches!(*link.state.borrow(), ConnectionState::Stopped(_));
            match ours.get(id.as_str()) {
                None => gave_up || may_drop,
                Some(node) => gave_up || node.advertise != link.advertise,
            }
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        if let Some(link) = links.remove(&id) {
            info!(node = %id, "dropping the link to a node that is gone or unreachable");
            let _ = repo.remove_network(link.network).await;
        }
    }
    for (id, node) in ours {
        if links.contains_key(id) {
            continue;
        }
        match dial(repo, key, node).await {
            Ok(link) => {
                info!(node = %id, advertise = %node.advertise, "linking to a node");
                links.insert(id.to_owned(), link);
            }
            Err(error) => debug!(node = %id, %error, "cannot link to a node yet"),
        }
    }
}

async fn dial(repo: &Repo, key: &ClusterKey, node: &LiveNode) -> Result<Link, String> {
    let token = key.token_to(&node.id).map_err(|e| e.to_string())?;
    let config = ClientConfig {
        authorization: Some(format!("Bearer {token}")),
        grant: Grant::cluster_node(),
        // Four attempts take longer than two heartbeats: a node that left cleanly is dropped
        // before its link gives up (and warns). One that died, or a link whose token lapsed,
        // gives up and is made again, with a fresh token, by the next heartbeat.
        initial_backoff: Duration::from_millis(600),
        max_backoff: HEARTBEAT * 2,
        give_up_after: Some(4),
        keepalive_interval: Some(HEARTBEAT * 2),
        ..ClientConfig::default()
    };
    let client = WebSocketClient::new(node.advertise.clone(), config).map_err(|e| e.to_string())?;
    let state = client.states();
    let network = repo.add_network(client).await.map_err(|e| e.to_string())?;
    Ok(Link {
        advertise: node.advertise.clone(),
        network,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_dropped_only_after_a_whole_window_of_heartbeats() {
        let start = std::time::Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut beating = Beating::default();
        assert!(!beating.succeeded(at(0)), "at start");
        assert!(!beating.succeeded(at(4)));
        assert!(beating.succeeded(at(5)));
        beating.failed();
        assert!(!beating.succeeded(at(20)), "just after an outage");
        assert!(!beating.succeeded(at(24)));
        assert!(beating.succeeded(at(25)));
    }

    #[test]
    fn port_zero_in_the_advertised_url_becomes_the_bound_port() {
        assert_eq!(with_port("ws://127.0.0.1:0", 4000), "ws://127.0.0.1:4000");
        assert_eq!(with_port("wss://node:0/sync", 4000), "wss://node:4000/sync");
        assert_eq!(with_port("ws://10.0.0.5:3030", 4000), "ws://10.0.0.5:3030");
    }

    #[test]
    fn a_link_token_admits_its_node_and_nothing_else_does() {
        let (a, b) = (PeerId::from("node-a"), PeerId::from("node-b"));
        let token = ClusterKey::new("secret", a.clone())
            .token_to(b.as_str())
            .unwrap();
        let at_b = ClusterKey::new("secret", b.clone());
        let LinkCheck::Node(admitted) = at_b.check(&token) else {
            panic!("a node's token was not admitted");
        };
        assert!(admitted.grant.cluster_node);
        assert!(matches!(admitted.identity, Some(Identity::Exactly(ref p)) if *p == a));
        // Signed with another secret, or addressed to another node: refused, not a client.
        assert!(matches!(
            ClusterKey::new("other", b).check(&token),
            LinkCheck::Refused(why) if why.contains("--cluster-secret")
        ));
        assert!(matches!(
            ClusterKey::new("secret", PeerId::from("node-c")).check(&token),
            LinkCheck::Refused(_)
        ));
        // A client's token (another audience) or no JWT at all: a client.
        assert!(matches!(at_b.check("not a token"), LinkCheck::NotALink));
        let client_token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({ "sub": "ada", "exp": 4_000_000_000u64 }),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(matches!(at_b.check(&client_token), LinkCheck::NotALink));
    }
}
