//! Durable acknowledgement's bookkeeping for one document: which messages to which peers must
//! wait for which save.
//!
//! Any sync message to a peer may tell it that we hold its changes (our heads include them).
//! So once a peer's change is applied, every message to that peer waits until a save that holds
//! the change has landed, and goes out in order after it. Saves are numbered as they start; a
//! save holds every change applied before it started. A message built after the peer's latest
//! change waits for the first save that started after that change, and no longer: a peer that
//! writes again while a save runs still gets the answers that save made durable, as soon as it
//! lands. (Waiting instead until the peer had nothing unsaved would starve a peer that writes
//! faster than the disk syncs.)
//!
//! What this covers: the changes a peer sends us itself, as in a star of clients around a
//! server. In a mesh, a peer's change can reach us first through another peer (or wait in
//! automerge's queue for a dependency another peer sends, after a save): only that other peer is
//! known to have changed the document, and the author may hear our heads, with its change in
//! them, before the save. Telling authors apart would take a map from automerge actors to peers,
//! which the protocol does not give.
//!
//! The document actor reports changes, messages and saves, and sends what comes back.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Message, PeerId};

/// The document's acknowledgement bookkeeping (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct DurableAcks {
    /// The number the next save to start gets (the first is 1).
    next_save: u64,
    /// Every change applied before save number `durable_through` started is durable.
    durable_through: u64,
    /// Peers with applied changes not yet durable: the save their latest change waits for. A
    /// peer stays here across disconnects, so that a new connection waits too.
    unsaved: BTreeMap<PeerId, u64>,
    /// Messages held, with the save each waits for, in the order they were built.
    held: Vec<(u64, Message)>,
    /// Their [`Message::approximate_size`], together.
    held_bytes: usize,
}

impl DurableAcks {
    /// Nothing waits.
    pub(crate) fn new() -> Self {
        DurableAcks {
            next_save: 1,
            ..Self::default()
        }
    }

    /// `peer`'s change was just applied: messages to it wait for the next save to start.
    pub(crate) fn changed_by(&mut self, peer: &PeerId) {
        self.unsaved.insert(peer.clone(), self.next_save);
    }

    /// Holds the messages that must wait for a save and returns the rest, to send now.
    pub(crate) fn route(&mut self, messages: Vec<Message>) -> Vec<Message> {
        if self.unsaved.is_empty() {
            return messages;
        }
        let mut now = Vec::with_capacity(messages.len());
        for message in messages {
            let waits_for = message
                .target_id()
                .and_then(|target| self.unsaved.get(target).copied());
            match waits_for {
                Some(save) => {
                    self.held_bytes += message.approximate_size();
                    self.held.push((save, message));
                }
                None => now.push(message),
            }
        }
        now
    }

    /// Whether a peer waits on changes that no started save holds yet.
    pub(crate) fn waiting_on_next_save(&self) -> bool {
        self.unsaved.values().any(|save| *save == self.next_save)
    }

    /// Whether any peer waits for a save.
    pub(crate) fn anyone_waiting(&self) -> bool {
        !self.unsaved.is_empty()
    }

    /// A save starts now, holding every change applied so far: its number.
    pub(crate) fn save_started(&mut self) -> u64 {
        let number = self.next_save;
        self.next_save += 1;
        number
    }

    /// Save `number` landed (or had nothing to write): what waited for it, or for an earlier
    /// save that failed, goes out, in order.
    pub(crate) fn save_landed(&mut self, number: u64) -> Vec<Message> {
        self.durable_through = self.durable_through.max(number);
        let through = self.durable_through;
        self.unsaved.retain(|_, save| *save > through);
        if self.unsaved.is_empty() {
            // An emptied map keeps its first node (368 bytes here), in every loaded document
            // a peer ever wrote to.
            self.unsaved = BTreeMap::new();
        }
        let (go, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(save, _)| *save <= through);
        self.held = keep;
        self.recount();
        go.into_iter().map(|(_, message)| message).collect()
    }

    /// `peer`'s connection (or its sync) ended: messages built for it are dropped. Its unsaved
    /// changes still hold back what a new connection gets.
    pub(crate) fn connection_ended(&mut self, peer: &PeerId) {
        self.held
            .retain(|(_, message)| message.target_id() != Some(peer));
        self.recount();
    }

    fn recount(&mut self) {
        self.held_bytes = self
            .held
            .iter()
            .map(|(_, message)| message.approximate_size())
            .sum();
    }

    /// The number the next save to start will get.
    pub(crate) fn next_save(&self) -> u64 {
        self.next_save
    }

    /// Every change applied before this save number started is durable.
    pub(crate) fn durable_through(&self) -> u64 {
        self.durable_through
    }

    /// How many messages are held.
    pub(crate) fn held_len(&self) -> usize {
        self.held.len()
    }

    /// About how many bytes the held messages take.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Drops every held message and returns the peers that waited for a save (with changes or
    /// messages waiting), to be cut off. Their changes still count as unsaved.
    pub(crate) fn drop_waiting(&mut self) -> BTreeSet<PeerId> {
        let mut waiting: BTreeSet<PeerId> = self.unsaved.keys().cloned().collect();
        waiting.extend(
            self.held
                .drain(..)
                .filter_map(|(_, message)| message.target_id().cloned()),
        );
        self.held_bytes = 0;
        waiting
    }
}

#[cfg(test)]
mod tests {
    use crate::{DocUnavailableMessage, DocumentId};

    use super::*;

    fn peer(name: &str) -> PeerId {
        PeerId::from(name.to_owned())
    }

    /// A message to `to`, told apart by `n` (its document id's first bytes do not matter here).
    fn message(to: &str, n: u8) -> Message {
        Message::DocUnavailable(DocUnavailableMessage {
            sender_id: peer(&format!("server-{n}")),
            target_id: peer(to),
            document_id: DocumentId::from_random_bytes([n; 16]),
        })
    }

    fn senders(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|m| match m {
                Message::DocUnavailable(m) => m.sender_id.to_string(),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn without_unsaved_changes_nothing_waits() {
        let mut acks = DurableAcks::new();
        assert_eq!(acks.route(vec![message("w", 1)]).len(), 1);
        assert!(!acks.anyone_waiting());
    }

    #[test]
    fn a_writer_hears_back_once_the_save_holding_its_change_lands() {
        let mut acks = DurableAcks::new();
        acks.changed_by(&peer("w"));
        let now = acks.route(vec![message("w", 1), message("reader", 2)]);
        assert_eq!(senders(&now), ["server-2"], "only the writer waits");
        assert!(acks.waiting_on_next_save());
        let save = acks.save_started();
        assert!(!acks.waiting_on_next_save());
        assert_eq!(senders(&acks.save_landed(save)), ["server-1"]);
        assert!(!acks.anyone_waiting());
        assert_eq!(acks.route(vec![message("w", 3)]).len(), 1);
    }

    /// A writer faster than the disk: each save releases what it made durable, though the
    /// writer has newer changes waiting for the next one.
    #[test]
    fn a_writer_that_keeps_writing_is_answered_save_by_save() {
        let mut acks = DurableAcks::new();
        acks.changed_by(&peer("w"));
        acks.route(vec![message("w", 1)]);
        let first = acks.save_started();
        acks.changed_by(&peer("w"));
        acks.route(vec![message("w", 2)]);
        assert_eq!(senders(&acks.save_landed(first)), ["server-1"]);
        assert!(acks.anyone_waiting());
        // Still behind the one before it, in order.
        acks.route(vec![message("w", 3)]);
        let second = acks.save_started();
        assert_eq!(senders(&acks.save_landed(second)), ["server-2", "server-3"]);
        assert!(!acks.anyone_waiting());
    }

    #[test]
    fn after_a_failed_save_the_next_one_that_lands_releases_both() {
        let mut acks = DurableAcks::new();
        acks.changed_by(&peer("w"));
        acks.route(vec![message("w", 1)]);
        let _failed = acks.save_started();
        acks.changed_by(&peer("w"));
        acks.route(vec![message("w", 2)]);
        assert!(acks.waiting_on_next_save());
        let retry = acks.save_started();
        assert_eq!(senders(&acks.save_landed(retry)), ["server-1", "server-2"]);
    }

    #[test]
    fn a_new_connection_still_waits_but_gets_nothing_built_for_the_old_one() {
        let mut acks = DurableAcks::new();
        acks.changed_by(&peer("w"));
        acks.route(vec![message("w", 1)]);
        acks.connection_ended(&peer("w"));
        assert_eq!(acks.held_len(), 0);
        assert!(acks.route(vec![message("w", 2)]).is_empty());
        let save = acks.save_started();
        assert_eq!(senders(&acks.save_landed(save)), ["server-2"]);
    }

    #[test]
    fn dropping_held_messages_names_every_waiting_peer() {
        let mut acks = DurableAcks::new();
        acks.changed_by(&peer("a"));
        acks.changed_by(&peer("b"));
        acks.changed_by(&peer("quiet"));
        acks.route(vec![message("a", 1), message("b", 2), message("c", 3)]);
        let cut: BTreeSet<PeerId> = acks.drop_waiting();
        assert_eq!(cut, BTreeSet::from([peer("a"), peer("b"), peer("quiet")]));
        assert_eq!(acks.held_len(), 0);
        assert!(acks.anyone_waiting(), "their changes are still unsaved");
    }

    /// One step of a worker's life, as the bookkeeping sees it.
    #[derive(Clone, Debug)]
    enum Step {
        /// A peer's change is applied.
        Change(u8),
        /// A message to a peer is built.
        Build(u8),
        /// A save starts (if none is running).
        Start,
        /// The running save lands.
        Land,
        /// The running save fails.
        Fail,
        /// A save with nothing to write starts and lands at once.
        Nothing,
        /// A peer's connection ends.
        Leave(u8),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..3).prop_map(Step::Change),
            (0u8..3).prop_map(Step::Build),
            (0u8..3).prop_map(Step::Build),
            Just(Step::Start),
            Just(Step::Land),
            Just(Step::Fail),
            Just(Step::Nothing),
            (0u8..3).prop_map(Step::Leave),
        ]
    }

    /// A model of what was sent: every message goes out only once a save that started after its
    /// peer's latest change (before the message was built) has landed; each peer's messages go
    /// in the order they were built; and once a save lands with nothing new behind it, nothing
    /// is left waiting.
    #[derive(Default)]
    struct Model {
        /// Per message number: its peer and the time of its peer's latest change before it.
        built: Vec<(u8, Option<usize>)>,
        latest_change: BTreeMap<u8, usize>,
        /// When each landed save started.
        landed_starts: Vec<usize>,
        /// Message numbers sent, per peer, in order.
        sent: BTreeMap<u8, Vec<usize>>,
        /// Message numbers dropped with a connection.
        dropped: BTreeSet<usize>,
    }

    impl Model {
        fn sent(&mut self, messages: Vec<Message>) {
            for n in senders(&messages) {
                let n: usize = n.trim_start_matches("server-").parse().unwrap();
                let (peer, change) = self.built[n];
                if let Some(change) = change {
                    assert!(
                        self.landed_starts.iter().any(|start| *start > change),
                        "message {n} to peer {peer} went out before a save holding its change"
                    );
                }
                let order = self.sent.entry(peer).or_default();
                assert!(order.last().is_none_or(|last| *last < n), "out of order");
                order.push(n);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn messages_wait_for_exactly_the_save_that_holds_their_peers_change(
            steps in proptest::collection::vec(step(), 0..120)
        ) {
            let mut acks = DurableAcks::new();
            let mut model = Model::default();
            let mut running: Option<(u64, usize)> = None;
            for (time, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Change(p) => {
                        acks.changed_by(&peer(&p.to_string()));
                        model.latest_change.insert(p, time);
                    }
                    Step::Build(p) => {
                        let n = model.built.len();
                        model.built.push((p, model.latest_change.get(&p).copied()));
                        let to = message(&p.to_string(), 0);
                        let Message::DocUnavailable(mut m) = to else { unreachable!() };
                        m.sender_id = peer(&format!("server-{n}"));
                        let now = acks.route(vec![Message::DocUnavailable(m)]);
                        model.sent(now);
                    }
                    Step::Start if running.is_none() => {
                        running = Some((acks.save_started(), time));
                    }
                    Step::Land => {
                        if let Some((number, started)) = running.take() {
                            model.landed_starts.push(started);
                            let go = acks.save_landed(number);
                            model.sent(go);
                        }
                    }
                    Step::Fail => {
                        running = None;
                    }
                    Step::Nothing if running.is_none() => {
                        let number = acks.save_started();
                        model.landed_starts.push(time);
                        let go = acks.save_landed(number);
                        model.sent(go);
                    }
                    Step::Leave(p) => {
                        let before: BTreeSet<usize> = model.sent.values().flatten().copied().collect();
                        acks.connection_ended(&peer(&p.to_string()));
                        for (n, (to, _)) in model.built.iter().enumerate() {
                            if *to == p && !before.contains(&n) {
                                model.dropped.insert(n);
                            }
                        }
                    }
                    Step::Start | Step::Nothing => {}
                }
            }
            // The disk answers again: the running save lands, and one more with nothing new.
            if let Some((number, started)) = running.take() {
                model.landed_starts.push(started);
                let go = acks.save_landed(number);
                model.sent(go);
            }
            let number = acks.save_started();
            model.landed_starts.push(usize::MAX);
            let go = acks.save_landed(number);
            model.sent(go);
            proptest::prop_assert_eq!(acks.held_len(), 0);
            proptest::prop_assert!(!acks.anyone_waiting());
            let sent: BTreeSet<usize> = model.sent.values().flatten().copied().collect();
            for n in 0..model.built.len() {
                proptest::prop_assert!(
                    sent.contains(&n) || model.dropped.contains(&n),
                    "message {} neither sent nor dropped", n
                );
            }
        }
    }
}
