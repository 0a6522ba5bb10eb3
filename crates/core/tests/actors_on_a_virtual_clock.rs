//! Repos made of the real hub and document actors, linked in memory on a virtual clock
//! (`tandem_core::testing`): unloading, durable acknowledgement, share-policy changes. Each test
//! runs the network until it is quiet and then looks, so a bug has no timing to hide behind.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::common::virtual_clock::{doc_with, value};
use automerge::transaction::Transactable;
use automerge::{Automerge, ReadDoc, ROOT};
use tandem_core::sync::HandleState;
use tandem_core::testing::{Network, NodeEvent, Policy, Saves};
use tandem_core::{Access, DocumentId, PeerId};

fn ask_only() -> Policy {
    ask_only_with(|_, _| true)
}

/// Offers nothing unasked; gives access where `access` says (an [`Access`] or a `bool`).
fn ask_only_with<A: Into<Access>>(access: impl Fn(&PeerId, &DocumentId) -> A + 'static) -> Policy {
    Policy {
        announce: Box::new(|_, _| false),
        access: Box::new(move |peer, document| access(peer, document).into()),
    }
}

/// A server that offers nothing keeps, per connection, which documents it introduced the
/// client to. Once those documents go idle they unload, and the introductions stay (the client
/// is synced again when a document comes back) until the client leaves; a document that does
/// not exist keeps none (see `made_up_ids_leave_nothing_behind_once_answered`).
#[test]
fn introductions_outlive_unloading_and_end_with_the_connection() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.idle_timeout = Some(Duration::from_secs(60)));
    network.node(server).set_policy(ask_only());
    let client = network.add("client", |_| {});
    let link = network.link(server, client);
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
    assert_eq!(network.node(server).introductions(), 20);
    network.cut(link);
    network.run_until_quiescent();
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
    let (mut network, [server, _], id, written) =
        write_behind_a_stuck_save(|c| c.max_held = 16, |n| Box::new(doc_with("n", n)));
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

/// A document looked for in storage only (the admin API's read) that storage lacks is
/// unavailable at once and leaves memory, even with peers offered everything: it is asked of
/// nobody, so a client holding it does not make the server fetch it.
#[test]
fn a_stored_find_storage_lacks_asks_no_peer() {
    let mut network = Network::new();
    let server = network.add("server", |_| {});
    let client = network.add("client", |_| {});
    network.node(client).set_policy(ask_only());
    network.link(server, client);
    let id = DocumentId::random();
    network.node(client).create(id.clone(), doc_with("n", 1));
    network.node(client).hold(&id, true);
    network.run_until_quiescent();
    assert!(network.node(server).loaded().is_empty());

    network.node(server).find_stored(&id);
    network.run_until_quiescent();
    assert!(
        network.node(server).loaded().is_empty(),
        "the server fetched what only the client holds"
    );

    // Another client asking meanwhile is answered without waiting for its find timeout.
    let asker = network.add("asker", |_| {});
    network.link(server, asker);
    network.run_until_quiescent();
    network.node(server).find_stored(&id);
    network.node(asker).find(&id);
    network.run_until_quiescent();
    assert_ne!(
        network.node(asker).state(&id),
        Some(HandleState::Requesting),
        "the asker waits on a server that asked nobody"
    );

    // The application looking for it while storage is read does ask the client.
    network.node(server).find_stored(&id);
    network.node(server).find(&id);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, server, &id, "n"), Some(1));
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

/// A document unloaded for being idle is loaded from storage again when a peer sends it a
/// change, and holds both its stored history and that change, in memory and once more after
/// the next unload.
#[test]
fn a_document_changed_by_a_peer_after_unloading_reloads_with_everything() {
    let mut network = Network::new();
    let keeper = network.add("keeper", |c| {
        c.idle_timeout = Some(Duration::from_millis(100));
    });
    let peer = network.add("peer", |_| {});
    network.link(keeper, peer);
    let id = DocumentId::random();
    network.node(keeper).create(id.clone(), doc_with("v", 1));
    network.node(peer).find(&id);
    network.node(peer).hold(&id, true);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, peer, &id, "v"), Some(1));
    network.advance(Duration::from_secs(1));
    assert!(
        !network.node(keeper).loaded().contains(&id),
        "never unloaded"
    );

    network.node(peer).change(&id, doc_with("v", 2));
    network.run_until_quiescent();
    assert_eq!(value(&mut network, keeper, &id, "v"), Some(2));
    network.advance(Duration::from_secs(1));
    assert!(!network.node(keeper).loaded().contains(&id));
    network.node(keeper).find(&id);
    network.run_until_quiescent();
    let reloaded = network
        .node(keeper)
        .document(&id)
        .map(|d| d.doc.get_heads());
    let at_peer = network.node(peer).document(&id).map(|d| d.doc.get_heads());
    assert_eq!(reloaded, at_peer);
}

/// A document the policy does not announce to a peer is not pushed to it, though the others
/// are; asked for, it is given.
#[test]
fn a_document_not_announced_is_not_pushed_but_given_when_asked_for() {
    let mut network = Network::new();
    let owner = network.add("owner", |_| {});
    let watcher = network.add("watcher", |_| {});
    let (private, public) = (DocumentId::random(), DocumentId::random());
    let hidden = private.clone();
    network.node(owner).set_policy(Policy {
        announce: Box::new(move |_, doc| doc != Some(&hidden)),
        access: Box::new(|_, _| Access::ReadWrite),
    });
    network
        .node(owner)
        .create(private.clone(), doc_with("n", 1));
    network.node(owner).create(public.clone(), doc_with("n", 2));
    network.link(owner, watcher);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, watcher, &public, "n"), Some(2));
    assert_eq!(network.node(watcher).state(&private), None, "pushed");

    network.node(watcher).find(&private);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, watcher, &private, "n"), Some(1));
}

/// A peer whose access the policy takes away gets no further change of the document (while
/// another peer does); given it back, it catches up.
#[test]
fn access_taken_away_stops_syncing_and_given_back_resumes() {
    let mut network = Network::new();
    let owner = network.add("owner", |_| {});
    let friend = network.add("friend", |_| {});
    let witness = network.add("witness", |_| {});
    network.link(owner, friend);
    network.link(owner, witness);
    let id = DocumentId::random();
    let allowed = Rc::new(Cell::new(true));
    let (revoked, grant) = (id.clone(), allowed.clone());
    network
        .node(owner)
        .set_policy(ask_only_with(move |peer, doc| {
            peer.as_str() != "friend" || *doc != revoked || grant.get()
        }));
    network.node(owner).create(id.clone(), doc_with("v", 1));
    for node in [friend, witness] {
        network.node(node).find(&id);
        network.node(node).hold(&id, true);
    }
    network.run_until_quiescent();
    assert_eq!(value(&mut network, friend, &id, "v"), Some(1));

    allowed.set(false);
    network.node(owner).share_policy_changed();
    network.node(owner).change(&id, doc_with("v", 2));
    network.run_until_quiescent();
    assert_eq!(value(&mut network, witness, &id, "v"), Some(2));
    assert_eq!(
        value(&mut network, friend, &id, "v"),
        Some(1),
        "a peer without access still got the change"
    );

    allowed.set(true);
    network.node(owner).share_policy_changed();
    network.run_until_quiescent();
    assert_eq!(value(&mut network, friend, &id, "v"), Some(2));
}

/// A peer refused a document it asked for is synced once the policy lets it have it: the ask
/// counts although it was refused, and its unavailable document turns ready.
#[test]
fn a_peer_refused_then_granted_access_gets_the_document_it_asked_for() {
    let mut network = Network::new();
    let owner = network.add("owner", |_| {});
    let asker = network.add("asker", |_| {});
    network.link(owner, asker);
    let allowed = Rc::new(Cell::new(false));
    let grant = allowed.clone();
    network
        .node(owner)
        .set_policy(ask_only_with(move |_, _| grant.get()));
    let id = DocumentId::random();
    network.node(owner).create(id.clone(), doc_with("n", 5));
    network.node(asker).find(&id);
    network.node(asker).hold(&id, true);
    network.run_until_quiescent();
    assert_eq!(
        network.node(asker).state(&id),
        Some(HandleState::Unavailable)
    );

    allowed.set(true);
    network.node(owner).share_policy_changed();
    network.run_until_quiescent();
    assert_eq!(network.node(asker).state(&id), Some(HandleState::Ready));
    assert_eq!(value(&mut network, asker, &id, "n"), Some(5));
}

/// The heads `node` last heard the server hold of `id` (its acknowledgement), and the heads
/// `node` holds.
fn acknowledged_and_held(
    network: &mut Network,
    node: usize,
    id: &DocumentId,
) -> (
    Option<Vec<automerge::ChangeHash>>,
    Option<Vec<automerge::ChangeHash>>,
) {
    let document = network.node(node).document(id);
    (
        document.and_then(|d| d.actor.peer_heads(&PeerId::from("server"))),
        document.map(|d| d.doc.get_heads()),
    )
}

/// A writer that reconnects while the server's save of its change still waits does not hear,
/// in the server's answer to its greeting, heads that acknowledge the change; once the save
/// lands, it does.
#[test]
fn a_reconnected_writer_is_not_acknowledged_before_the_save() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.durable_acknowledgement = true);
    let writer = network.add("writer", |_| {});
    let link = network.link(server, writer);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("n", 0));
    network.node(writer).hold(&id, true);
    network.advance(Duration::from_secs(1));

    network.set_saves(server, Saves::Hold);
    network.node(writer).change(&id, doc_with("n", 1));
    network.advance(Duration::from_secs(1));
    assert_eq!(value(&mut network, server, &id, "n"), Some(1));
    network.cut(link);
    network.link(server, writer);
    network.advance(Duration::from_secs(1));
    // The server's answer to the greeting waits for the save, or holds older heads.
    let (acknowledged, held) = acknowledged_and_held(&mut network, writer, &id);
    assert_ne!(acknowledged, held, "acknowledged before the save landed");

    network.set_saves(server, Saves::Land);
    network.advance(Duration::from_secs(1));
    let (acknowledged, held) = acknowledged_and_held(&mut network, writer, &id);
    assert_eq!(acknowledged, held);
}

/// A writer that changes the document again while the save of its last change runs hears that
/// change acknowledged as soon as that save lands, not only once it stops writing.
#[test]
fn a_writer_faster_than_the_disk_is_answered_save_by_save() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.durable_acknowledgement = true);
    let writer = network.add("writer", |_| {});
    network.link(server, writer);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("n", 0));
    network.node(writer).hold(&id, true);
    network.advance(Duration::from_secs(1));

    network.set_saves(server, Saves::Hold);
    network.node(writer).change(&id, doc_with("n", 1));
    network.advance(Duration::from_secs(1));
    let (_, first) = acknowledged_and_held(&mut network, writer, &id);
    let [saving] = network.node(server).saves_in_flight()[..] else {
        panic!("the server is not saving the first change");
    };
    network.node(writer).change(&id, doc_with("n", 2));
    network.advance(Duration::from_secs(1));
    assert_eq!(value(&mut network, server, &id, "n"), Some(2));

    network.node(server).land_save(saving, true);
    network.advance(Duration::from_secs(1));
    let (acknowledged, second) = acknowledged_and_held(&mut network, writer, &id);
    assert_eq!(
        acknowledged, first,
        "the first change's save landed unanswered"
    );
    assert_eq!(network.node(server).saves_in_flight().len(), 1);

    network.set_saves(server, Saves::Land);
    network.advance(Duration::from_secs(1));
    let (acknowledged, _) = acknowledged_and_held(&mut network, writer, &id);
    assert_eq!(acknowledged, second);
}

/// A read-only peer receives the document and every later change; its own change is never
/// applied, stored or passed on. Given write access, it is asked for what was ignored.
#[test]
fn a_read_only_peer_reads_everything_and_writes_nothing() {
    let mut network = Network::new();
    let owner = network.add("owner", |_| {});
    let reader = network.add("reader", |_| {});
    let other = network.add("other", |_| {});
    network.link(owner, reader);
    network.link(owner, other);
    let writes = Rc::new(Cell::new(false));
    let grant = writes.clone();
    network
        .node(owner)
        .set_policy(ask_only_with(move |peer, _| {
            if peer.as_str() == "reader" && !grant.get() {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            }
        }));
    let id = DocumentId::random();
    network.node(owner).create(id.clone(), doc_with("v", 1));
    for node in [reader, other] {
        network.node(node).find(&id);
        network.node(node).hold(&id, true);
    }
    network.run_until_quiescent();
    assert_eq!(value(&mut network, reader, &id, "v"), Some(1));

    network.node(reader).change(&id, doc_with("mine", 1));
    network.node(owner).change(&id, doc_with("v", 2));
    network.advance(Duration::from_secs(1));
    assert_eq!(value(&mut network, reader, &id, "v"), Some(2), "not read");
    assert_eq!(value(&mut network, owner, &id, "mine"), None, "applied");
    assert_eq!(value(&mut network, other, &id, "mine"), None, "passed on");
    network.node(owner).evict(&id);
    network.advance(Duration::from_secs(1));
    network.node(owner).find(&id);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, owner, &id, "v"), Some(2));
    assert_eq!(value(&mut network, owner, &id, "mine"), None, "stored");
    // Asked again by the reader (with another change), the reloaded document still refuses it.
    network.node(reader).change(&id, doc_with("mine", 2));
    network.run_until_quiescent();
    assert_eq!(
        value(&mut network, owner, &id, "mine"),
        None,
        "applied after a reload"
    );

    writes.set(true);
    network.node(owner).share_policy_changed();
    network.run_until_quiescent();
    assert_eq!(value(&mut network, owner, &id, "mine"), Some(2));
}

/// A client's credentials narrow what the server's policy allows: a document they do not grant
/// is unavailable to it as if it did not exist, and one granted read-only reaches it but its
/// changes to it are not applied.
#[test]
fn a_grant_narrows_what_the_policy_allows() {
    let mut network = Network::new();
    let server = network.add("server", |_| {});
    let client = network.add("client", |_| {});
    let (granted, other) = (DocumentId::random(), DocumentId::random());
    network
        .node(server)
        .create(granted.clone(), doc_with("n", 1));
    network.node(server).create(other.clone(), doc_with("n", 2));
    network.run_until_quiescent();
    network.link_granted(
        server,
        client,
        tandem_core::Grant {
            documents: Some([granted.clone()].into()),
            access: Access::ReadOnly,
            sender_bound: true,
            cluster_node: false,
        },
    );
    network.run_until_quiescent();
    // The server's policy announces everything, but only the granted document arrives.
    assert_eq!(value(&mut network, client, &granted, "n"), Some(1));
    assert_eq!(network.node(client).state(&other), None, "pushed");
    network.node(client).find(&other);
    network.run_until_quiescent();
    assert_eq!(
        network.node(client).state(&other),
        Some(HandleState::Unavailable)
    );

    network.node(client).hold(&granted, true);
    network.node(client).change(&granted, doc_with("n", 5));
    network.node(server).change(&granted, doc_with("m", 6));
    network.run_until_quiescent();
    assert_eq!(
        value(&mut network, server, &granted, "n"),
        Some(1),
        "applied"
    );
    assert_eq!(
        value(&mut network, client, &granted, "m"),
        Some(6),
        "not read"
    );
}

/// A peer asking for documents that exist nowhere is told so, and the server keeps nothing for
/// them: no actor, no introduction, without waiting for the idle time.
#[test]
fn made_up_ids_leave_nothing_behind_once_answered() {
    let mut network = Network::new();
    let server = network.add("server", |c| {
        c.idle_timeout = Some(Duration::from_secs(300))
    });
    network.node(server).set_policy(ask_only());
    let client = network.add("client", |_| {});
    network.link(server, client);
    let real = DocumentId::random();
    network.node(server).create(real.clone(), doc_with("n", 1));
    let made_up: Vec<DocumentId> = (0..100).map(|_| DocumentId::random()).collect();
    for id in &made_up {
        network.node(client).find(id);
    }
    network.run_until_quiescent();
    for id in &made_up {
        assert_eq!(
            network.node(client).state(id),
            Some(HandleState::Unavailable)
        );
    }
    assert_eq!(network.node(server).loaded(), vec![real]);
    assert_eq!(network.node(server).introductions(), 0);
}

/// A server keeping tombstones deletes a document for good: the client that still holds it
/// keeps writing, yet the server takes none of it, never holds the document again, and tells
/// another client it does not exist. Without tombstones (automerge-repo's local delete), the
/// same client brings it back.
#[test]
fn a_deleted_document_stays_deleted_while_its_tombstone_is_kept() {
    for tombstones in [true, false] {
        let mut network = Network::new();
        let server = network.add("server", |c| c.tombstones = tombstones);
        network.node(server).set_policy(ask_only());
        let writer = network.add("writer", |_| {});
        let reader = network.add("reader", |_| {});
        network.link(server, writer);
        network.link(server, reader);
        let id = DocumentId::random();
        network.node(writer).create(id.clone(), doc_with("v", 1));
        network.node(writer).hold(&id, true);
        network.run_until_quiescent();
        assert_eq!(value(&mut network, server, &id, "v"), Some(1));

        network.node(server).delete(&id);
        network.run_until_quiescent();
        assert!(!network.node(server).loaded().contains(&id));
        network.node(writer).change(&id, doc_with("v", 2));
        network.run_until_quiescent();
        if !tombstones {
            assert_eq!(value(&mut network, server, &id, "v"), Some(2));
            continue;
        }
        assert!(
            !network.node(server).loaded().contains(&id),
            "a deleted document came back into memory"
        );
        network.node(reader).find(&id);
        network.run_until_quiescent();
        assert_eq!(
            network.node(reader).state(&id),
            Some(HandleState::Unavailable)
        );
        network.node(server).find(&id);
        network.run_until_quiescent();
        assert_eq!(network.node(server).state(&id), Some(HandleState::Deleted));
        assert_eq!(value(&mut network, server, &id, "v"), None);
    }
}

/// A filling that sets `key` to `len` characters of text (one change of about that size).
fn text_of(key: &'static str, len: usize) -> impl FnOnce(&mut Automerge) {
    move |doc| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, key, "x".repeat(len))?;
            Ok(())
        })
        .expect("a document takes a put");
    }
}

fn refusals(network: &mut Network, node: usize) -> (usize, bool) {
    let events = network.node(node).take_events();
    let refused = events
        .iter()
        .filter(|e| matches!(e, NodeEvent::Refused(..)))
        .count();
    let cut_off = events.iter().any(|e| matches!(e, NodeEvent::CutOff(..)));
    (refused, cut_off)
}

/// A change larger than the server takes is refused: not applied, not passed on to another
/// peer, not stored; the writer stays connected (only reading the document from then on) and
/// its small changes before it are kept. Sent again on each reconnection, it is refused each
/// time, and the third time the writer is cut off.
#[test]
fn a_change_over_the_quota_is_refused_and_a_peer_that_insists_is_cut_off() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.quota.max_change_bytes = Some(400));
    network.node(server).set_policy(ask_only());
    let writer = network.add("writer", |_| {});
    let reader = network.add("reader", |_| {});
    let mut link = network.link(server, writer);
    network.link(server, reader);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("n", 1));
    network.node(writer).hold(&id, true);
    network.run_until_quiescent();
    network.node(reader).find(&id);
    network.node(reader).hold(&id, true);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, reader, &id, "n"), Some(1));
    network.node(server).take_events();

    network.node(writer).change(&id, text_of("big", 2_000));
    network.run_until_quiescent();
    assert_eq!(refusals(&mut network, server), (1, false));
    assert!(network.is_up(link));
    let server_doc = |network: &mut Network, node: usize| {
        network
            .node(node)
            .document(&id)
            .map(|d| d.doc.get(ROOT, "big").ok().flatten().is_some())
    };
    assert_eq!(server_doc(&mut network, server), Some(false));
    assert_eq!(server_doc(&mut network, reader), Some(false));

    for attempt in 2..=3 {
        network.cut(link);
        network.node(server).take_events();
        link = network.link(server, writer);
        network.run_until_quiescent();
        let (refused, cut_off) = refusals(&mut network, server);
        assert_eq!(refused, 1, "attempt {attempt}");
        assert_eq!(cut_off, attempt == 3, "attempt {attempt}");
    }
    assert!(!network.is_up(link));
    // Not stored either: loaded afresh, the document has no such key.
    network.advance(Duration::from_secs(1));
    network.node(server).evict(&id);
    network.node(server).find(&id);
    network.run_until_quiescent();
    assert_eq!(server_doc(&mut network, server), Some(false));
    assert_eq!(value(&mut network, server, &id, "n"), Some(1));
}

/// Changes that would grow a document past its bound are refused, small as each may be.
#[test]
fn changes_that_would_grow_a_document_past_its_bound_are_refused() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.quota.max_document_bytes = Some(3_000));
    network.node(server).set_policy(ask_only());
    let writer = network.add("writer", |_| {});
    network.link(server, writer);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("n", 0));
    network.node(writer).hold(&id, true);
    network.run_until_quiescent();
    let mut taken = 0;
    for n in 0..20 {
        network.node(writer).change(&id, text_of("chunk", 400 + n));
        network.run_until_quiescent();
        let (refused, _) = refusals(&mut network, server);
        if refused > 0 {
            break;
        }
        taken += 1;
    }
    assert!((2..20).contains(&taken), "{taken} changes taken");
}

/// A document that refused a peer's change and is loaded again while the peer stays connected
/// still only reads from it: a fresh sync state would ask for the refused change, which the
/// peer, having sent it, would never send again, and the two would talk forever.
#[test]
fn a_refused_peer_stays_a_reader_when_the_document_is_loaded_again() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.quota.max_change_bytes = Some(400));
    network.node(server).set_policy(ask_only());
    let writer = network.add("writer", |_| {});
    let link = network.link(server, writer);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("n", 1));
    network.node(writer).hold(&id, true);
    network.run_until_quiescent();
    network.node(writer).change(&id, text_of("big", 2_000));
    network.run_until_quiescent();
    assert_eq!(refusals(&mut network, server), (1, false));

    network.advance(Duration::from_secs(1));
    network.node(server).evict(&id);
    network.node(server).find(&id);
    // Returns only if the two fall quiet.
    network.run_until_quiescent();
    network.node(writer).change(&id, doc_with("n", 2));
    network.run_until_quiescent();
    assert!(network.is_up(link));
    assert_eq!(value(&mut network, server, &id, "n"), Some(1));
}

/// The bound on what waits for a save holds in bytes too: a writer whose answers pile up behind
/// a save that never ends is cut off once they pass `max_held_bytes`, few as they are.
#[test]
fn writers_waiting_on_a_stuck_save_are_cut_off_past_a_bound_in_bytes() {
    let (_, _, _, written) = write_behind_a_stuck_save(
        |c| c.max_held_bytes = 8_000,
        |n| Box::new(text_of("text", 500 + n as usize)),
    );
    assert!(written < 100, "cut off only after {written} changes");
}

/// A server with durable acknowledgement (configured further by `configure`) whose saves never
/// land, and a writer making the changes `change` makes until it is cut off (at most 200):
/// the network, the server and writer, the document, and the changes written before the cut.
fn write_behind_a_stuck_save(
    configure: impl FnOnce(&mut tandem_core::document::DocumentConfig),
    change: impl Fn(i64) -> Box<dyn FnOnce(&mut Automerge)>,
) -> (Network, [usize; 2], DocumentId, i64) {
    let mut network = Network::new();
    let server = network.add("server", |c| {
        c.durable_acknowledgement = true;
        configure(c);
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
        network.node(writer).change(&id, change(n));
        network.advance(Duration::from_millis(10));
        if !network.is_up(link) {
            break;
        }
        written = n;
    }
    assert!(!network.is_up(link), "the writer was never cut off");
    (network, [server, writer], id, written)
}

/// A client that only watches a document still gets another client's change after the server
/// unloaded the document for being idle.
#[test]
fn a_watching_client_gets_changes_made_after_the_server_unloaded_the_document() {
    let mut network = Network::new();
    let server = network.add("server", |c| c.idle_timeout = Some(Duration::from_secs(60)));
    network.node(server).set_policy(ask_only());
    let (writer, watcher) = (
        network.add("writer", |_| {}),
        network.add("watcher", |_| {}),
    );
    network.link(server, writer);
    network.link(server, watcher);
    let id = DocumentId::random();
    network.node(writer).create(id.clone(), doc_with("v", 1));
    network.node(writer).hold(&id, true);
    network.run_until_quiescent();
    network.node(watcher).find(&id);
    network.node(watcher).hold(&id, true);
    network.run_until_quiescent();
    assert_eq!(value(&mut network, watcher, &id, "v"), Some(1));
    network.advance(Duration::from_secs(61));
    network.node(writer).change(&id, doc_with("v", 2));
    network.run_until_quiescent();
    assert_eq!(value(&mut network, watcher, &id, "v"), Some(2));
}

/// A client repo looks for a document while its transport is still making its first attempt:
/// the find waits (whether the document is new to memory or was found unavailable before), the
/// server joins and is asked, and the document arrives. Once the transports have settled, a
/// find nobody can answer is unavailable again at once.
#[test]
fn a_find_while_the_client_is_connecting_waits_for_the_server() {
    let mut network = Network::new();
    let server = network.add("server", |_| {});
    let client = network.add("client", |_| {});
    let (fresh, seen_before) = (DocumentId::random(), DocumentId::random());
    for id in [&fresh, &seen_before] {
        network.node(server).create(id.clone(), doc_with("n", 1));
        network.node(server).hold(id, true);
    }
    // Looked for once with no transport at all: unavailable, and still in memory.
    network.node(client).find(&seen_before);
    network.run_until_quiescent();
    assert_eq!(
        network.node(client).state(&seen_before),
        Some(HandleState::Unavailable)
    );

    network.node(client).networks_settling(true);
    network.node(client).find(&fresh);
    network.node(client).find(&seen_before);
    network.run_until_quiescent();
    for id in [&fresh, &seen_before] {
        assert_eq!(
            network.node(client).state(id),
            Some(HandleState::Requesting),
            "gave up before the client's first attempt ended"
        );
    }
    network.link(client, server);
    network.node(client).networks_settling(false);
    network.run_until_quiescent();
    for id in [&fresh, &seen_before] {
        assert_eq!(value(&mut network, client, id, "n"), Some(1));
    }

    let nobody_has = DocumentId::random();
    network.node(client).find(&nobody_has);
    network.run_until_quiescent();
    assert_eq!(
        network.node(client).state(&nobody_has),
        Some(HandleState::Unavailable)
    );
}
