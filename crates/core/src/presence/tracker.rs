//! One document's presence as a sans-IO state machine: our state, which we broadcast (in full,
//! or a channel at a time) with heartbeats between, and every other peer's, which we keep until
//! it says goodbye or goes silent for longer than the time to live. It behaves on the wire as
//! automerge-repo's `Presence` does, so a JS peer and a Rust peer see each other.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::debug;

use super::PresenceMessage;
use crate::PeerId;

/// How often to say we are still here, and how long to remember a silent peer
/// (automerge-repo's defaults: 15 s and three heartbeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceConfig {
    /// A heartbeat goes out when we have broadcast nothing for this long; silent peers are
    /// looked for at the same pace.
    pub heartbeat: Duration,
    /// A peer heard from less recently than this is forgotten.
    pub peer_ttl: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            heartbeat: Duration::from_secs(15),
            peer_ttl: Duration::from_secs(45),
        }
    }
}

/// How long after hearing a new peer we send it our whole state (automerge-repo waits as long,
/// for the peer to be ready to hear it).
pub const HELLO_DELAY: Duration = Duration::from_millis(500);

/// At most this many peers are remembered; presence from more is ignored until some leave.
pub const MAX_PEERS: usize = 4096;

/// What we know of another peer's presence.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerPresence {
    /// Its state, channel by channel.
    pub state: Map<String, Value>,
    /// When it last changed its state.
    pub last_active_at: Instant,
    /// When we last heard from it.
    pub last_seen_at: Instant,
}

/// What a peer's presence did.
#[derive(Debug, Clone, PartialEq)]
pub enum PresenceEvent {
    /// It sent its whole state.
    Snapshot {
        /// Who.
        peer: PeerId,
        /// The state it sent.
        state: Map<String, Value>,
    },
    /// It changed one channel.
    Update {
        /// Who.
        peer: PeerId,
        /// The channel.
        channel: String,
        /// The new value.
        value: Value,
    },
    /// It is still here.
    Heartbeat {
        /// Who.
        peer: PeerId,
    },
    /// It left.
    Goodbye {
        /// Who.
        peer: PeerId,
    },
    /// These went silent for longer than the time to live and are forgotten.
    Pruned(Vec<PeerId>),
}

/// What the driver does for the tracker.
#[derive(Debug, Clone, PartialEq)]
pub enum PresenceEffect {
    /// Broadcast these CBOR bytes on the document (an ephemeral message).
    Broadcast(Vec<u8>),
    /// Tell the application.
    Event(PresenceEvent),
}

/// One document's presence: ours and our peers'.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tandem_core::presence::{PresenceConfig, PresenceEffect, PresenceTracker};
/// let start = Instant::now();
/// let initial = serde_json::json!({"name": "ada"}).as_object().cloned().unwrap();
/// let (mut presence, effects) = PresenceTracker::start(PresenceConfig::default(), initial, start);
/// assert!(matches!(effects[..], [PresenceEffect::Broadcast(_)])); // our snapshot
/// assert_eq!(presence.next_timeout(), Some(start + Duration::from_secs(15)));
/// let later = presence.tick(start + Duration::from_secs(15));
/// assert!(matches!(later[..], [PresenceEffect::Broadcast(_)])); // a heartbeat
/// ```
#[derive(Debug)]
pub struct PresenceTracker {
    config: PresenceConfig,
    local: Map<String, Value>,
    peers: BTreeMap<PeerId, PeerPresence>,
    running: bool,
    next_heartbeat: Instant,
    next_prune: Instant,
    /// When to send our whole state to peers heard for the first time (one snapshot serves
    /// every newcomer until then).
    hello_at: Option<Instant>,
    effects: Vec<PresenceEffect>,
}

impl PresenceTracker {
    /// Starts with `initial` as our state, which goes out at once.
    pub fn start(
        config: PresenceConfig,
        initial: Map<String, Value>,
        now: Instant,
    ) -> (Self, Vec<PresenceEffect>) {
        let mut tracker = PresenceTracker {
            config,
            local: initial,
            peers: BTreeMap::new(),
            running: true,
            next_heartbeat: now + config.heartbeat,
            next_prune: now + config.heartbeat,
            hello_at: None,
            effects: Vec::new(),
        };
        tracker.send_snapshot(now);
        let effects = std::mem::take(&mut tracker.effects);
        (tracker, effects)
    }

    /// Our state.
    pub fn local_state(&self) -> &Map<String, Value> {
        &self.local
    }

    /// The peers present, and their states.
    pub fn peers(&self) -> &BTreeMap<PeerId, PeerPresence> {
        &self.peers
    }

    /// Whether it still runs (not stopped).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Sets one channel of our state and broadcasts it.
    pub fn broadcast(
        &mut self,
        now: Instant,
        channel: String,
        value: Value,
    ) -> Vec<PresenceEffect> {
        if self.running {
            self.local.insert(channel.clone(), value.clone());
            self.send(now, &PresenceMessage::Update { channel, value });
        }
        std::mem::take(&mut self.effects)
    }

    /// An ephemeral message from `sender` on the document: what it says, if it is presence.
    pub fn receive(&mut self, now: Instant, sender: &PeerId, data: &[u8]) -> Vec<PresenceEffect> {
        if !self.running {
            return Vec::new();
        }
        match PresenceMessage::decode(data) {
            None => {}
            Some(Err(error)) => debug!(%sender, %error, "unreadable presence message; ignored"),
            Some(Ok(message)) => self.received(now, sender, message),
        }
        std::mem::take(&mut self.effects)
    }

    fn received(&mut self, now: Instant, sender: &PeerId, message: PresenceMessage) {
        let known = self.peers.contains_key(sender);
        if !known {
            if self.peers.len() >= MAX_PEERS && !matches!(message, PresenceMessage::Goodbye) {
                debug!(%sender, "too many peers present; ignored");
                return;
            }
            // A newcomer hears our whole state soon.
            self.hello_at.get_or_insert(now + HELLO_DELAY);
        }
        let peer = sender.clone();
        let event = match message {
            PresenceMessage::Heartbeat => {
                // A heartbeat from a peer we do not know yet: its snapshot will follow.
                if let Some(present) = self.peers.get_mut(sender) {
                    present.last_seen_at = now;
                }
                PresenceEvent::Heartbeat { peer }
            }
            PresenceMessage::Goodbye => {
                self.peers.remove(sender);
                PresenceEvent::Goodbye { peer }
            }
            PresenceMessage::Update { channel, value } => {
                let mut changed = Map::new();
                changed.insert(channel.clone(), value.clone());
                self.merge(now, sender, changed);
                PresenceEvent::Update {
                    peer,
                    channel,
                    value,
                }
            }
            PresenceMessage::Snapshot(state) => {
                // Merged, not replaced, as automerge-repo does.
                self.merge(now, sender, state.clone());
                PresenceEvent::Snapshot { peer, state }
            }
        };
        self.effects.push(PresenceEffect::Event(event));
    }

    fn merge(&mut self, now: Instant, sender: &PeerId, state: Map<String, Value>) {
        let present = self
            .peers
            .entry(sender.clone())
            .or_insert_with(|| PeerPresence {
                state: Map::new(),
                last_active_at: now,
                last_seen_at: now,
            });
        present.state.extend(state);
        present.last_active_at = now;
        present.last_seen_at = now;
    }

    /// Time passed: hellos, heartbeats and pruning that are due.
    pub fn tick(&mut self, now: Instant) -> Vec<PresenceEffect> {
        if !self.running {
            return Vec::new();
        }
        if self.hello_at.is_some_and(|at| at <= now) {
            self.hello_at = None;
            self.send_snapshot(now);
        }
        if self.next_heartbeat <= now {
            self.send(now, &PresenceMessage::Heartbeat);
        }
        if self.next_prune <= now {
            self.next_prune = now + self.config.heartbeat;
            let ttl = self.config.peer_ttl;
            let mut pruned = Vec::new();
            self.peers.retain(|peer, present| {
                let keep = now.saturating_duration_since(present.last_seen_at) <= ttl;
                if !keep {
                    pruned.push(peer.clone());
                }
                keep
            });
            if !pruned.is_empty() {
                self.effects
                    .push(PresenceEffect::Event(PresenceEvent::Pruned(pruned)));
            }
        }
        std::mem::take(&mut self.effects)
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        if !self.running {
            return None;
        }
        [
            Some(self.next_heartbeat),
            Some(self.next_prune),
            self.hello_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Stops: a goodbye goes out (peers forget us at once), and nothing more is sent or heard.
    pub fn stop(&mut self, now: Instant) -> Vec<PresenceEffect> {
        if self.running {
            self.send(now, &PresenceMessage::Goodbye);
            self.running = false;
            self.hello_at = None;
        }
        std::mem::take(&mut self.effects)
    }

    fn send_snapshot(&mut self, now: Instant) {
        let snapshot = PresenceMessage::Snapshot(self.local.clone());
        self.send(now, &snapshot);
    }

    /// Broadcasts `message`; any broadcast puts the next heartbeat off by a whole interval.
    fn send(&mut self, now: Instant, message: &PresenceMessage) {
        self.effects
            .push(PresenceEffect::Broadcast(message.encode()));
        self.next_heartbeat = now + self.config.heartbeat;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    fn sent(effects: &[PresenceEffect]) -> Vec<PresenceMessage> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                PresenceEffect::Broadcast(bytes) => PresenceMessage::decode(bytes)?.ok(),
                PresenceEffect::Event(_) => None,
            })
            .collect()
    }

    fn events(effects: &[PresenceEffect]) -> Vec<PresenceEvent> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                PresenceEffect::Event(event) => Some(event.clone()),
                PresenceEffect::Broadcast(_) => None,
            })
            .collect()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn heartbeats_fill_silences_and_broadcasts_put_them_off() {
        let t0 = Instant::now();
        let (mut presence, first) =
            PresenceTracker::start(PresenceConfig::default(), state(json!({"a": 1})), t0);
        assert_eq!(
            sent(&first),
            [PresenceMessage::Snapshot(state(json!({"a": 1})))]
        );
        assert!(presence.tick(t0 + 14 * SECOND).is_empty());
        assert_eq!(
            sent(&presence.tick(t0 + 15 * SECOND)),
            [PresenceMessage::Heartbeat]
        );
        let update = presence.broadcast(t0 + 20 * SECOND, "b".into(), json!(2));
        assert_eq!(
            sent(&update),
            [PresenceMessage::Update {
                channel: "b".into(),
                value: json!(2)
            }]
        );
        assert_eq!(presence.local_state(), &state(json!({"a": 1, "b": 2})));
        assert!(sent(&presence.tick(t0 + 30 * SECOND)).is_empty(), "put off");
        assert_eq!(
            sent(&presence.tick(t0 + 35 * SECOND)),
            [PresenceMessage::Heartbeat]
        );
    }

    #[test]
    fn a_new_peer_is_remembered_merged_and_sent_our_state_soon() {
        let t0 = Instant::now();
        let (mut presence, _) =
            PresenceTracker::start(PresenceConfig::default(), state(json!({"me": true})), t0);
        let alice = PeerId::from("alice");
        let snapshot = PresenceMessage::Snapshot(state(json!({"name": "alice", "x": 1})));
        let heard = presence.receive(t0 + SECOND, &alice, &snapshot.encode());
        assert_eq!(
            events(&heard),
            [PresenceEvent::Snapshot {
                peer: alice.clone(),
                state: state(json!({"name": "alice", "x": 1}))
            }]
        );
        assert!(sent(&heard).is_empty(), "the hello waits");
        assert_eq!(presence.next_timeout(), Some(t0 + SECOND + HELLO_DELAY));
        let hello = presence.tick(t0 + SECOND + HELLO_DELAY);
        assert_eq!(
            sent(&hello),
            [PresenceMessage::Snapshot(state(json!({"me": true})))]
        );

        let update = PresenceMessage::Update {
            channel: "x".into(),
            value: json!(2),
        };
        presence.receive(t0 + 2 * SECOND, &alice, &update.encode());
        let known = &presence.peers()[&alice];
        assert_eq!(known.state, state(json!({"name": "alice", "x": 2})));
        assert_eq!(known.last_active_at, t0 + 2 * SECOND);
        // Not presence, and broken presence: nothing happens.
        let mut other = Vec::new();
        ciborium::into_writer(&json!({"chat": "hi"}), &mut other).unwrap();
        assert!(presence.receive(t0 + 3 * SECOND, &alice, &other).is_empty());
        assert!(presence
            .receive(t0 + 3 * SECOND, &alice, &[0xff])
            .is_empty());
    }

    #[test]
    fn a_peer_that_says_goodbye_or_goes_silent_is_forgotten() {
        let t0 = Instant::now();
        let config = PresenceConfig {
            heartbeat: 10 * SECOND,
            peer_ttl: 30 * SECOND,
        };
        let (mut presence, _) = PresenceTracker::start(config, Map::new(), t0);
        let (alice, bob) = (PeerId::from("alice"), PeerId::from("bob"));
        let hello = PresenceMessage::Snapshot(Map::new()).encode();
        presence.receive(t0, &alice, &hello);
        presence.receive(t0, &bob, &hello);
        let bye = presence.receive(t0 + SECOND, &alice, &PresenceMessage::Goodbye.encode());
        assert_eq!(
            events(&bye),
            [PresenceEvent::Goodbye {
                peer: alice.clone()
            }]
        );
        assert!(!presence.peers().contains_key(&alice));

        // Bob's heartbeats keep him; once they stop, he goes after the time to live.
        let beat = PresenceMessage::Heartbeat.encode();
        presence.receive(t0 + 25 * SECOND, &bob, &beat);
        assert!(events(&presence.tick(t0 + 50 * SECOND)).is_empty());
        let pruned = presence.tick(t0 + 60 * SECOND);
        assert_eq!(events(&pruned), [PresenceEvent::Pruned(vec![bob])]);
        assert!(presence.peers().is_empty());
    }

    #[test]
    fn a_stopped_tracker_says_goodbye_and_then_nothing() {
        let t0 = Instant::now();
        let (mut presence, _) = PresenceTracker::start(PresenceConfig::default(), Map::new(), t0);
        assert_eq!(sent(&presence.stop(t0)), [PresenceMessage::Goodbye]);
        assert_eq!(presence.next_timeout(), None);
        assert!(presence.tick(t0 + 60 * SECOND).is_empty());
        assert!(presence.broadcast(t0, "x".into(), json!(1)).is_empty());
        let hello = PresenceMessage::Snapshot(Map::new()).encode();
        assert!(presence
            .receive(t0, &PeerId::from("alice"), &hello)
            .is_empty());
        assert!(presence.stop(t0).is_empty());
    }

    #[test]
    fn presence_from_too_many_peers_is_ignored() {
        let t0 = Instant::now();
        let (mut presence, _) = PresenceTracker::start(PresenceConfig::default(), Map::new(), t0);
        let hello = PresenceMessage::Snapshot(Map::new()).encode();
        for n in 0..MAX_PEERS + 10 {
            presence.receive(t0, &PeerId::from(format!("peer-{n}")), &hello);
        }
        assert_eq!(presence.peers().len(), MAX_PEERS);
    }
}
