//! Steps `DocumentSync`s against each other, message by message, with no runtime: the request /
//! sync / doc-unavailable rules of docs/protocol.md#synchronisation.

use std::collections::{HashMap, VecDeque};

use automerge::transaction::Transactable;
use automerge::{Automerge, ReadDoc, ROOT};
use tandem_core::sync::{DocumentSync, HandleState, PeerStatus};
use tandem_core::{DocumentId, Message, PeerId, PeerMetadata, StorageId};

/// One repo's view of one document.
struct Node {
    sync: DocumentSync,
    doc: Automerge,
}

/// A few nodes and the messages in flight between them.
struct Net {
    nodes: HashMap<PeerId, Node>,
    wire: VecDeque<Message>,
    sent: Vec<Message>,
}

fn peer(name: &str) -> PeerId {
    PeerId::from(name)
}

fn with_text(text: &str) -> Automerge {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "text", text).unwrap();
    tx.commit();
    doc
}

impl Net {
    fn new(id: &DocumentId, nodes: &[(&str, HandleState, Automerge)]) -> Net {
        let nodes = nodes
            .iter()
            .map(|(name, state, doc)| {
                let node = Node {
                    sync: DocumentSync::new(id.clone(), peer(name), *state),
                    doc: doc.clone(),
                };
                (peer(name), node)
            })
            .collect();
        Net {
            nodes,
            wire: VecDeque::new(),
            sent: Vec::new(),
        }
    }

    fn node(&mut self, name: &str) -> &mut Node {
        self.nodes.get_mut(&peer(name)).unwrap()
    }

    /// `at` puts `other` in the document's sync set.
    fn link(&mut self, at: &str, other: &str) {
        let node = self.node(at);
        let out = node
            .sync
            .add_peer(&node.doc, peer(other), &PeerMetadata::default(), None);
        self.wire.extend(out.messages);
    }

    fn finish_loading(&mut self, at: &str) {
        let node = self.node(at);
        let out = node.sync.finish_loading(&node.doc, true);
        self.wire.extend(out.messages);
    }

    /// Delivers messages until none is left; panics on a loop.
    fn run(&mut self) {
        for _ in 0..1000 {
            let Some(message) = self.wire.pop_front() else {
                return;
            };
            self.sent.push(message.clone());
            let target = message.target_id().unwrap().clone();
            let node = self.nodes.get_mut(&target).unwrap();
            let out = match &message {
                Message::Sync(m) | Message::Request(m) => node
                    .sync
                    .receive_sync(
                        &mut node.doc,
                        &m.sender_id,
                        &PeerMetadata::default(),
                        None,
                        m.data.as_bytes(),
                        matches!(message, Message::Request(_)),
                    )
                    .unwrap(),
                Message::DocUnavailable(m) => node.sync.receive_doc_unavailable(&m.sender_id),
                other => panic!("unexpected {other:?}"),
            };
            self.wire.extend(out.messages);
        }
        panic!("messages kept flowing");
    }

    fn kinds(&self, from: &str, to: &str) -> Vec<&'static str> {
        self.sent
            .iter()
            .filter(|m| m.sender_id().as_str() == from && m.target_id().unwrap().as_str() == to)
            .map(|m| m.type_name())
            .collect()
    }
}

#[test]
fn a_peer_without_the_document_requests_it_and_becomes_ready() {
    let id = DocumentId::random();
    let mut net = Net::new(
        &id,
        &[
            ("a", HandleState::Ready, with_text("hello")),
            ("b", HandleState::Loading, Automerge::new()),
        ],
    );
    net.link("b", "a");
    net.finish_loading("b");
    net.link("a", "b");
    net.run();
    assert_eq!(net.node("b").sync.state(), HandleState::Ready);
    assert_eq!(net.node("b").doc.get_heads(), net.node("a").doc.get_heads());
    assert_eq!(net.kinds("b", "a")[0], "request");
    assert_eq!(net.kinds("a", "b")[0], "sync");
    assert!(!net.kinds("a", "b").contains(&"doc-unavailable"));
}

#[test]
fn with_no_peers_a_missing_document_is_unavailable_at_once() {
    let id = DocumentId::random();
    let mut net = Net::new(&id, &[("a", HandleState::Loading, Automerge::new())]);
    let node = net.node("a");
    let out = node.sync.finish_loading(&node.doc, true);
    assert_eq!(out.state_change, Some(HandleState::Unavailable));
    assert!(out.messages.is_empty());
}

#[test]
/// JS sends an empty `sync` first; we answer with `doc-unavailable` alone (an empty `sync` is
/// answered with a `request`, and two peers lacking a document could go on forever).
fn a_peer_that_lacks_the_document_answers_doc_unavailable() {
    let id = DocumentId::random();
    let mut net = Net::new(
        &id,
        &[
            ("client", HandleState::Loading, Automerge::new()),
            ("server", HandleState::Loading, Automerge::new()),
        ],
    );
    net.link("client", "server");
    net.finish_loading("client");
    // The server's worker sees the request while loading, as a repo driver delivers it.
    let request = net.wire.pop_front().unwrap();
    assert_eq!(request.type_name(), "request");
    net.wire.push_front(request);
    let message = net.wire.pop_front().unwrap();
    net.sent.push(message.clone());
    let Message::Request(m) = &message else {
        unreachable!()
    };
    let server = net.node("server");
    let out = server
        .sync
        .receive_sync(
            &mut server.doc,
            &m.sender_id,
            &PeerMetadata::default(),
            None,
            m.data.as_bytes(),
            true,
        )
        .unwrap();
    assert!(out.messages.is_empty(), "no reply while loading");
    net.finish_loading("server");
    net.run();
    assert_eq!(net.kinds("server", "client"), ["doc-unavailable"]);
    assert_eq!(net.node("client").sync.state(), HandleState::Unavailable);
    assert_eq!(net.node("server").sync.state(), HandleState::Unavailable);
}

#[test]
fn a_relay_asks_its_other_peers_before_saying_unavailable() {
    let id = DocumentId::random();
    let mut net = Net::new(
        &id,
        &[
            ("a", HandleState::Ready, with_text("from a")),
            ("hub", HandleState::Loading, Automerge::new()),
            ("c", HandleState::Loading, Automerge::new()),
        ],
    );
    net.link("c", "hub");
    net.finish_loading("c");
    // The hub registers both peers while loading, then asks a.
    net.link("hub", "a");
    net.link("hub", "c");
    net.finish_loading("hub");
    net.link("a", "hub");
    net.run();
    assert_eq!(net.node("c").sync.state(), HandleState::Ready);
    assert_eq!(net.node("hub").sync.state(), HandleState::Ready);
    assert_eq!(net.node("c").doc.get_heads(), net.node("a").doc.get_heads());
    assert!(!net.kinds("hub", "c").contains(&"doc-unavailable"));
}

#[test]
fn an_unavailable_document_becomes_ready_when_a_peer_brings_it() {
    let id = DocumentId::random();
    let mut net = Net::new(
        &id,
        &[
            ("a", HandleState::Loading, Automerge::new()),
            ("late", HandleState::Ready, with_text("late")),
        ],
    );
    net.finish_loading("a");
    assert_eq!(net.node("a").sync.state(), HandleState::Unavailable);
    net.link("a", "late");
    assert_eq!(
        net.wire[0].type_name(),
        "request",
        "unavailable documents are asked for again"
    );
    net.link("late", "a");
    net.run();
    assert_eq!(net.node("a").sync.state(), HandleState::Ready);
    let text = net.node("a").doc.get(ROOT, "text").unwrap().unwrap().0;
    assert_eq!(text.into_string().ok().as_deref(), Some("late"));
}

#[test]
fn concurrent_edits_converge_and_statuses_track_who_has_it() {
    let id = DocumentId::random();
    let base = with_text("base");
    let mut net = Net::new(
        &id,
        &[
            ("a", HandleState::Ready, base.fork()),
            ("b", HandleState::Ready, base.fork()),
        ],
    );
    net.link("a", "b");
    net.link("b", "a");
    net.run();
    for (name, key) in [("a", "x"), ("b", "y")] {
        let node = net.node(name);
        let mut tx = node.doc.transaction();
        tx.put(ROOT, key, 1).unwrap();
        tx.commit();
        let out = node.sync.document_changed(&node.doc);
        net.wire.extend(out.messages);
    }
    net.run();
    assert_eq!(net.node("a").doc.get_heads(), net.node("b").doc.get_heads());
    assert_eq!(net.node("a").doc.get_heads().len(), 2);
    assert_eq!(
        net.node("a").sync.peer_status(&peer("b")),
        Some(PeerStatus::Has)
    );
}

#[test]
fn sync_states_are_persisted_only_for_non_ephemeral_peers_with_storage() {
    let id = DocumentId::random();
    let mut a = DocumentSync::new(id.clone(), peer("a"), HandleState::Ready);
    let mut doc_a = with_text("x");
    let mut b = DocumentSync::new(id.clone(), peer("b"), HandleState::Loading);
    let doc_b = Automerge::new();
    b.add_peer(&doc_b, peer("a"), &PeerMetadata::default(), None);
    let request = b.finish_loading(&doc_b, true).messages.remove(0);
    let Message::Request(m) = request else {
        panic!("expected a request")
    };
    let storage = StorageId::from("11111111-2222-4333-8444-555555555555");
    for (is_ephemeral, expected) in [(true, 0), (false, 1)] {
        let metadata = PeerMetadata {
            storage_id: Some(storage.clone()),
            is_ephemeral,
        };
        let mut fresh = DocumentSync::new(id.clone(), peer("a"), HandleState::Ready);
        let out = fresh
            .receive_sync(
                &mut doc_a,
                &m.sender_id,
                &metadata,
                None,
                m.data.as_bytes(),
                true,
            )
            .unwrap();
        assert_eq!(out.sync_states.len(), expected);
        assert_eq!(out.remote_heads.len(), 1, "heads are reported either way");
    }
    let out = a
        .receive_sync(
            &mut doc_a,
            &m.sender_id,
            &PeerMetadata::default(),
            None,
            m.data.as_bytes(),
            true,
        )
        .unwrap();
    assert!(out.sync_states.is_empty());
}

#[test]
fn garbage_sync_data_is_an_error_not_a_panic() {
    let id = DocumentId::random();
    let mut a = DocumentSync::new(id, peer("a"), HandleState::Ready);
    let mut doc = with_text("x");
    let result = a.receive_sync(
        &mut doc,
        &peer("b"),
        &PeerMetadata::default(),
        None,
        &[0x42, 0xff, 0xff],
        false,
    );
    assert!(result.is_err());
    assert_eq!(doc.get_heads().len(), 1);
}

/// Found by the simulation (tandem-sim seed 332): a peer crashed after its sync state was saved
/// but before the changes that state speaks of were. Restarted, it offers that state, which
/// claims shared heads its document lacks; the other side answers every such message with a
/// reset and no changes, and the two bounced messages forever. A stored state that names changes
/// the document does not hold is now dropped.
#[test]
fn a_stored_sync_state_ahead_of_the_document_does_not_stall_sync() {
    let id = DocumentId::random();
    let full = with_text("lost in the crash");
    // What a's old life shared with b: b's document, which a saved no chunk of.
    let mut a_then = Automerge::new();
    let mut b_side = full.fork();
    let (mut a_state, mut b_state) = (automerge::sync::State::new(), automerge::sync::State::new());
    use automerge::sync::SyncDoc;
    for _ in 0..10 {
        if let Some(m) = b_side.generate_sync_message(&mut b_state) {
            a_then.receive_sync_message(&mut a_state, m).unwrap();
        }
        if let Some(m) = a_then.generate_sync_message(&mut a_state) {
            b_side.receive_sync_message(&mut b_state, m).unwrap();
        }
    }
    assert_eq!(a_state.shared_heads, full.get_heads());
    // b lost that change too (it was never saved there either) and holds an older document.
    let mut net = Net::new(
        &id,
        &[
            ("a", HandleState::Loading, Automerge::new()),
            ("b", HandleState::Ready, with_text("what b kept")),
        ],
    );
    let node = net.node("a");
    let out = node.sync.add_peer(
        &node.doc,
        peer("b"),
        &PeerMetadata::default(),
        Some(a_state),
    );
    net.wire.extend(out.messages);
    net.link("b", "a");
    net.finish_loading("a");
    net.run();
    assert_eq!(net.node("a").doc.get_heads(), net.node("b").doc.get_heads());
    assert_eq!(net.node("a").sync.state(), HandleState::Ready);
}

/// Three peers that all look for a document none of them has settle unavailable among
/// themselves, with no find timeout. (The simulation's seed 890 had them wait on one another in
/// an interleaving this simple order does not reproduce; `a_peer_that_no_longer_has_the_document
/// _is_not_waited_on` is the step-by-step case of that fix.)
#[test]
fn peers_that_all_lack_a_document_settle_unavailable_without_a_timeout() {
    let id = DocumentId::random();
    let mut net = Net::new(
        &id,
        &[
            ("a", HandleState::Loading, Automerge::new()),
            ("b", HandleState::Loading, Automerge::new()),
            ("c", HandleState::Loading, Automerge::new()),
        ],
    );
    for (at, others) in [("a", ["b", "c"]), ("b", ["a", "c"]), ("c", ["a", "b"])] {
        for other in others {
            net.link(at, other);
        }
    }
    for at in ["a", "b", "c"] {
        net.finish_loading(at);
    }
    net.run();
    for at in ["a", "b", "c"] {
        assert_eq!(net.node(at).sync.state(), HandleState::Unavailable, "{at}");
    }
}

/// Found by the simulation (tandem-sim seed 697): r announced a document to b (so b counts r
/// as having it) and deleted it before b's answer arrived. b's answer, a `sync` asking for the
/// changes, reaches a fresh r that has nothing: r loads, asks its other peer, answers b with an
/// empty `sync`, and settles unavailable, owing b nothing (b never sent `request`). b waited on
/// a peer it still believed had the document. An empty answer now counts as "does not have it".
#[test]
fn a_peer_that_no_longer_has_the_document_is_not_waited_on() {
    let id = DocumentId::random();
    let mut net = Net::new(
        &id,
        &[
            ("r", HandleState::Ready, with_text("soon deleted")),
            ("b", HandleState::Loading, Automerge::new()),
        ],
    );
    net.link("b", "r");
    net.finish_loading("b");
    net.link("r", "b");
    // Only r's announcement (its heads) reaches b; b's request to r is lost with the old r.
    let announce = net
        .wire
        .iter()
        .position(|m| m.sender_id().as_str() == "r")
        .unwrap();
    let Message::Sync(announce) = net.wire.remove(announce).unwrap() else {
        panic!("r announces with sync")
    };
    net.wire.clear();
    let node = net.node("b");
    let answer = node
        .sync
        .receive_sync(
            &mut node.doc,
            &peer("r"),
            &PeerMetadata::default(),
            None,
            announce.data.as_bytes(),
            false,
        )
        .unwrap();
    assert_eq!(
        net.node("b").sync.peer_status(&peer("r")),
        Some(PeerStatus::Has)
    );
    assert!(answer.messages.iter().all(|m| m.type_name() == "sync"));
    // r deleted the document; a fresh r with another peer, c, that lacks it too, gets b's answer.
    for (name, state) in [("r", HandleState::Loading), ("c", HandleState::Unavailable)] {
        net.nodes.insert(
            peer(name),
            Node {
                sync: DocumentSync::new(id.clone(), peer(name), state),
                doc: Automerge::new(),
            },
        );
    }
    net.link("r", "c");
    net.link("c", "r");
    net.wire.extend(answer.messages);
    net.finish_loading("r");
    net.run();
    assert_eq!(net.node("r").sync.state(), HandleState::Unavailable);
    assert_eq!(net.node("b").sync.state(), HandleState::Unavailable);
}

/// A relay still looking for a document answers our request with an empty `sync` (so do JS
/// servers), and later sends the document or says `doc-unavailable`. That empty answer must not
/// make us give up: an earlier version took it for "does not have it", and a find through a JS
/// server failed at once (the bench's S5 against the JS server, now and then).
#[test]
fn an_empty_answer_to_a_request_is_not_taken_for_unavailable() {
    let id = DocumentId::random();
    let mut net = Net::new(
        &id,
        &[
            ("b", HandleState::Loading, Automerge::new()),
            ("r", HandleState::Loading, Automerge::new()),
            ("c", HandleState::Ready, with_text("far away")),
        ],
    );
    // r asks c, but c's answer is slow: the request waits.
    net.link("r", "c");
    net.finish_loading("r");
    let to_c: Vec<Message> = net.wire.drain(..).collect();
    net.link("b", "r");
    net.finish_loading("b");
    net.run();
    assert_eq!(net.node("r").sync.state(), HandleState::Requesting);
    assert_eq!(net.node("b").sync.state(), HandleState::Requesting);
    // c answers; the document reaches b through r.
    net.wire.extend(to_c);
    net.link("c", "r");
    net.run();
    assert_eq!(net.node("b").sync.state(), HandleState::Ready);
    assert_eq!(net.node("b").doc.get_heads(), net.node("c").doc.get_heads());
}

/// What a peer asked for counts for its connection only: a policy that lets peers sync what
/// they asked for must not offer a reconnected peer what it asked for before (automerge-repo
/// forgets it on disconnect too). Taking a peer out of the sync set for the policy's sake keeps
/// it: the peer still asked, on this connection.
#[test]
fn what_a_peer_asked_for_is_forgotten_when_it_leaves_not_when_it_is_set_aside() {
    let id = DocumentId::random();
    let mut net = Net::new(
        &id,
        &[
            ("a", HandleState::Ready, with_text("hello")),
            ("b", HandleState::Loading, Automerge::new()),
        ],
    );
    net.link("b", "a");
    net.finish_loading("b");
    net.run();
    assert!(net.node("a").sync.was_asked_by(&peer("b")));

    let _ = net.node("a").sync.remove_peer(&peer("b"));
    assert!(net.node("a").sync.was_asked_by(&peer("b")));

    let _ = net.node("a").sync.peer_left(&peer("b"));
    assert!(!net.node("a").sync.was_asked_by(&peer("b")));
    assert!(
        net.node("a").sync.remembers(&peer("b")),
        "its sync state stays"
    );
}
