//! Repos made of the real hub and document actors, linked in memory on a virtual clock
//! (`tandem_core::testing`): unloading, durable acknowledgement, share-policy changes. Each test
//! runs the network until it is quiet and then looks, so a bug has no timing to hide behind.

use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{Automerge, ReadDoc, ROOT};
use tandem_core::sync::HandleState;
use tandem_core::testing::{Network, NodeEvent, Policy, Saves};
use tandem_core::{DocumentId, PeerId};

/// A filling for a new document: `key` set to `value`.
fn doc_with(key: &'static str, value: i64) -> impl FnOnce(&mut Automerge) {
    move |doc| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, key, value)?;
            Ok(())
        })
        .expect("a fresh document takes a put");
    }
}

fn value(network: &mut Network, node: usize, id: &DocumentId, key: &str) -> Option<i64> {
    let document = network.node(node).document(id)?;
    let (value, _) = document.doc.get(ROOT, key).ok()??;
    value.as_i64()
}

fn ask_only() -> Policy {
    Policy {
        announce: Box::new(|_, _| false),
        access: Box::new(|_, _| true),
    }
}

/// A server that offers nothing keeps, per connection, which documents it introduced the
/// client to; once those documents go idle and unload, it forgets them all, so a client
/// connected for days does not make the server keep every id it touched.
#[test]
fn unloaded_documents_are_no_longer_introduced_to_anyone() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.idle_timeout = Some(Duration::from_secs(60)));
    network.node(server).set_policy(ask_only());
    let client = network.add("client", |_| {});
    network.link(server, client);
    let mut ids = Vec::new();
    for n in 0..20 {
        let id = DocumentId::random();
        network.node(client).create(id.clone(), doc_with("n", n));
        network.node(client).hold(&id, true);
        ids.push(id);
    }
    network.run_until_quiescent();
    assert_eq!(network.node(server).loaded().len(), 20);
    assert_eq!(network.node(server).introductions(), 20);

    network.advance(Duration::from_secs(61));
    assert!(network.node(server).loaded().is_empty());
    assert_eq!(network.node(server).introductions(), 0);
    // Everything reached the server's storage before it left memory.
    for (n, id) in ids.iter().enumerate() {
        network.node(server).find(id);
        network.run_until_quiescent();
        assert_eq!(value(&mut network, server, id, "n"), Some(n as i64));
    }
}

/// A peer offered everything when it connected is known to every document, and no
/// introductions are kept for it. When the policy withdraws that, it must count as introduced
/// everywhere, or its departure reaches no document.
#[test]
fn a_peer_no_longer_offered_everything_is_still_told_to_leave_everywhere() {
    let mut network = Network::new();
    let server = network.add("server", |_| {});
    let client = network.add("client", |_| {});
    let link = network.link(server, client);
    let ids: Vec<DocumentId> = (0..3).map(|_| DocumentId::random()).collect();
    for id in &ids {
        network.node(server).create(id.clone(), doc_with("n", 1));
    }
    network.run_until_quiescent();
    assert_eq!(
        network.node(server).introductions(),
        0,
        "offered everything"
    );

    network.node(server).set_policy(ask_only());
    network.node(server).share_policy_changed();
    network.run_until_quiescent();
    assert_eq!(network.node(server).introductions(), ids.len());

    network.cut(link);
    network.run_until_quiescent();
    assert_eq!(network.node(server).introductions(), 0);
    for id in &ids {
        let peers: Vec<PeerId> = network
            .node(server)
            .document(id)
            .map(|d| d.actor.sync_peers().cloned().collect())
            .unwrap_or_default();
        assert!(peers.is_empty(), "{id} still syncs with {peers:?}");
    }
}

/// With durable acknowledgement, a writer hears that the server holds its change only once the
/// save holding it has landed; a reader hears of the change at once.
#[test]
fn a_writer_is_acknowledged_only_once_its_change_is_saved() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.durable_acknowledgement = true);
    let writer = network.add("writer", |_| {});
    let reader = network.add("reader", |_| {});
    network.link(server, writer);
    network.link(server, reader);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("n", 0));
    network.node(writer).hold(&id, true);
    network.run_until_quiescent();
    network.node(reader).find(&id);
    network.advance(Duration::from_secs(1));

    network.set_saves(server, Saves::Hold);
    network.node(writer).change(&id, doc_with("n", 1));
    network.advance(Duration::from_secs(1));
    assert_eq!(value(&mut network, server, &id, "n"), Some(1));
    assert_eq!(
        value(&mut network, reader, &id, "n"),
        Some(1),
        "readers hear at once"
    );
    let writer_heads = network
        .node(writer)
        .document(&id)
        .map(|d| d.doc.get_heads());
    let server_heads_known_to_writer = network
        .node(writer)
        .document(&id)
        .and_then(|d| d.actor.peer_heads(&PeerId::from("server")));
    assert_ne!(
        server_heads_known_to_writer, writer_heads,
        "acknowledged before the save landed"
    );

    network.set_saves(server, Saves::Land);
    network.advance(Duration::from_secs(1));
    let server_heads_known_to_writer = network
        .node(writer)
        .document(&id)
        .and_then(|d| d.actor.peer_heads(&PeerId::from("server")));
    assert_eq!(server_heads_known_to_writer, writer_heads);
}

/// A save that never ends makes every answer to the document's writers wait for it. Past a
/// bound the writers are cut off, which bounds the server's memory; what they wrote stays, and
/// once the disk answers it is saved.
#[test]
fn writers_waiting_on_a_save_that_never_ends_are_cut_off_past_a_bound() {
    let mut network = Network::new();
    let server = network.add("server", |c| {
        c.durable_acknowledgement = true;
        c.max_held = 16;
    });
    let writer = network.add("writer", |_| {});
    let link = network.link(server, writer);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("n", 0));
    network.node(writer).hold(&id, true);
    network.advance(Duration::from_secs(1));

    network.set_saves(server, Saves::Hold);
    let mut written = 0;
    for n in 1..=200 {
        network.node(writer).change(&id, doc_with("n", n));
        network.advance(Duration::from_millis(10));
        if !network.is_up(link) {
            break;
        }
        written = n;
    }
    assert!(!network.is_up(link), "the writer was never cut off");
    assert!(written >= 16, "cut off after {written} changes");
    let cut_off = network
        .node(server)
        .take_events()
        .into_iter()
        .any(|e| matches!(e, NodeEvent::CutOff(_, ref p) if p.as_str() == "writer"));
    assert!(cut_off);
    let at_server = value(&mut network, server, &id, "n");
    assert!(at_server >= Some(written), "{at_server:?}");

    network.set_saves(server, Saves::Land);
    network.advance(Duration::from_secs(1));
    network.node(server).evict(&id);
    network.advance(Duration::from_secs(1));
    network.node(server).find(&id);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, server, &id, "n"), at_server);
}

/// A server that offers nothing gives a document only to a peer that asks for it; once its
/// policy offers it, a peer that never asked is synced too.
#[test]
fn a_policy_change_offers_what_was_only_given_on_request() {
    let mut network = Network::new();
    let server = network.add("server", |_| {});
    network.node(server).set_policy(ask_only());
    let asker = network.add("asker", |_| {});
    let other = network.add("other", |_| {});
    network.link(server, asker);
    network.link(server, other);
    let id = DocumentId::random();
    network.node(server).create(id.clone(), doc_with("n", 7));
    network.run_until_quiescent();
    assert_eq!(network.node(other).state(&id), None, "offered unasked");

    network.node(asker).find(&id);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, asker, &id, "n"), Some(7));
    assert_eq!(network.node(other).state(&id), None);

    network.node(server).set_policy(Policy::default());
    network.node(server).share_policy_changed();
    network.run_until_quiescent();
    assert_eq!(network.node(other).state(&id), Some(HandleState::Ready));
    assert_eq!(value(&mut network, other, &id, "n"), Some(7));
}

/// A find nobody can answer is unavailable once every peer has said so, without waiting for
/// the find timeout; asked again once a peer has it, it is found.
#[test]
fn a_find_nobody_can_answer_is_unavailable_until_asked_again() {
    let mut network = Network::new();
    let alice = network.add("alice", |_| {});
    let bob = network.add("bob", |_| {});
    network.link(alice, bob);
    let id = DocumentId::random();
    network.node(alice).find(&id);
    network.run_until_quiescent();
    assert_eq!(
        network.node(alice).state(&id),
        Some(HandleState::Unavailable)
    );

    network.node(bob).create(id.clone(), doc_with("n", 3));
    network.run_until_quiescent();
    network.node(alice).find(&id);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, alice, &id, "n"), Some(3));
}

/// A save that fails is tried again after the save debounce; the writer is acknowledged only
/// once one lands, and what it wrote is then in storage.
#[test]
fn a_failed_save_is_tried_again_and_acknowledges_only_when_it_lands() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.durable_acknowledgement = true);
    let writer = network.add("writer", |_| {});
    network.link(server, writer);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("n", 0));
    network.node(writer).hold(&id, true);
    network.advance(Duration::from_secs(1));
    let heads_at_server = |network: &mut Network| {
        network
            .node(writer)
            .document(&id)
            .and_then(|d| d.actor.peer_heads(&PeerId::from("server")))
    };

    network.set_saves(server, Saves::Fail);
    network.node(writer).change(&id, doc_with("n", 1));
    network.advance(Duration::from_secs(2));
    let writer_heads = network
        .node(writer)
        .document(&id)
        .map(|d| d.doc.get_heads());
    assert_ne!(
        heads_at_server(&mut network),
        writer_heads,
        "acknowledged a failed save"
    );
    assert!(
        network.node(server).saves_pending(),
        "the failed save was dropped"
    );

    network.set_saves(server, Saves::Land);
    network.advance(Duration::from_secs(1));
    assert_eq!(heads_at_server(&mut network), writer_heads);
    network.node(server).evict(&id);
    network.advance(Duration::from_secs(1));
    network.node(server).find(&id);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, server, &id, "n"), Some(1));
}
