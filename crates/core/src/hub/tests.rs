//! The hub actor, driven step by step.

use std::time::Instant;

use super::*;
use crate::document::{CommandId, Start};
use crate::{
    DocumentId, EphemeralMessage, Grant, Message, MessageData, PeerId, PeerMetadata, SessionId,
    SyncMessage,
};

fn hub() -> HubActor {
    HubActor::new(PeerId::from("server"), Default::default())
}

fn step(hub: &mut HubActor, input: HubInput) -> Vec<HubEffect> {
    hub.handle(Instant::now(), input)
}

/// Connects `peer`, answers the policy with `announce_any`; its connection id.
fn connect(hub: &mut HubActor, peer: &str, announce_any: bool) -> ConnectionId {
    connect_granted(hub, peer, announce_any, Grant::default())
}

/// [`connect`], with credentials that allow `grant`.
fn connect_granted(
    hub: &mut HubActor,
    peer: &str,
    announce_any: bool,
    grant: Grant,
) -> ConnectionId {
    let effects = join_as(hub, peer, grant);
    let connection = accepted(&effects).expect("accepted");
    let question = effects
        .iter()
        .find_map(|e| match e {
            HubEffect::Ask { question, .. } => Some(*question),
            _ => None,
        })
        .expect("asked");
    step(
        hub,
        HubInput::Answered {
            question,
            allowed: announce_any,
        },
    );
    connection
}

/// `peer` asks to join with `grant`; the hub's answer.
fn join_as(hub: &mut HubActor, peer: &str, grant: Grant) -> Vec<HubEffect> {
    step(
        hub,
        HubInput::Connect {
            command: CommandId(1),
            peer: PeerId::from(peer),
            metadata: PeerMetadata::default(),
            grant,
        },
    )
}

/// The connection a join's effects accepted.
fn accepted(effects: &[HubEffect]) -> Option<ConnectionId> {
    effects.iter().find_map(|e| match e {
        HubEffect::Accepted { connection, .. } => Some(*connection),
        _ => None,
    })
}

fn incoming(hub: &mut HubActor, connection: ConnectionId, message: Message) -> Vec<HubEffect> {
    step(
        hub,
        HubInput::Incoming {
            connection,
            message,
        },
    )
}

fn find(hub: &mut HubActor, document_id: &DocumentId) -> Vec<HubEffect> {
    step(
        hub,
        HubInput::Find {
            command: CommandId(2),
            document_id: document_id.clone(),
            mode: FindMode::Wanted { again: false },
        },
    )
}

fn spawned(effects: &[HubEffect]) -> Option<(DocumentActorId, Option<DocumentActorId>)> {
    effects.iter().find_map(|e| match e {
        HubEffect::Spawn { actor, after, .. } => Some((*actor, *after)),
        _ => None,
    })
}

fn sync_from(peer: &str, document_id: &DocumentId) -> Message {
    Message::Sync(SyncMessage {
        sender_id: PeerId::from(peer),
        target_id: PeerId::from("server"),
        document_id: document_id.clone(),
        data: MessageData::new(vec![0x42]).expect("not empty"),
    })
}

/// An older actor's end can reach the hub after a newer actor of the same document has itself
/// begun to stop. It must not clear the newer one's place: the actor started next would read
/// storage before the newer one's last save, and miss its last changes.
#[test]
fn a_late_end_of_an_older_actor_does_not_let_the_next_one_skip_waiting() {
    let mut hub = hub();
    let id = DocumentId::random();
    let (first, after) = spawned(&find(&mut hub, &id)).expect("spawned");
    assert_eq!(after, None);
    step(
        &mut hub,
        HubInput::DocumentIdle {
            actor: first,
            available: true,
        },
    );
    let (second, after) = spawned(&find(&mut hub, &id)).expect("spawned again");
    assert_eq!(after, Some(first), "the second waits for the first");
    step(
        &mut hub,
        HubInput::DocumentIdle {
            actor: second,
            available: true,
        },
    );
    // The first's end, late.
    step(&mut hub, HubInput::DocumentStopped(first));
    let (_third, after) = spawned(&find(&mut hub, &id)).expect("spawned a third time");
    assert_eq!(after, Some(second), "the third waits for the second");
}

/// Once the stopping actor has ended, nothing waits for it.
#[test]
fn an_actor_started_after_the_last_one_ended_waits_for_nobody() {
    let mut hub = hub();
    let id = DocumentId::random();
    let (first, _) = spawned(&find(&mut hub, &id)).expect("spawned");
    step(
        &mut hub,
        HubInput::DocumentIdle {
            actor: first,
            available: true,
        },
    );
    step(&mut hub, HubInput::DocumentStopped(first));
    let (_, after) = spawned(&find(&mut hub, &id)).expect("spawned again");
    assert_eq!(after, None);
}

/// A stale idle report (from an actor already replaced) stops nothing.
#[test]
fn an_idle_report_from_a_replaced_actor_stops_nothing() {
    let mut hub = hub();
    let id = DocumentId::random();
    let (first, _) = spawned(&find(&mut hub, &id)).expect("spawned");
    step(
        &mut hub,
        HubInput::DocumentIdle {
            actor: first,
            available: true,
        },
    );
    let (second, _) = spawned(&find(&mut hub, &id)).expect("spawned again");
    let effects = step(
        &mut hub,
        HubInput::DocumentIdle {
            actor: first,
            available: true,
        },
    );
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(hub.actor_of(&id), Some(second));
}

/// A sync message claiming another sender closes the connection and reaches no document.
#[test]
fn a_peer_that_lies_about_its_id_is_disconnected() {
    let mut hub = hub();
    let alice = connect(&mut hub, "alice", false);
    let id = DocumentId::random();
    let effects = incoming(&mut hub, alice, sync_from("mallory", &id));
    assert!(
        matches!(effects[..], [HubEffect::Close(c)] if c == alice),
        "{effects:?}"
    );
    assert_eq!(hub.actor_of(&id), None);
}

/// A document the connection's credentials do not grant is answered `doc-unavailable`, as one
/// that does not exist, and never loaded; a granted one is.
#[test]
fn a_document_the_grant_excludes_is_unavailable_and_never_loaded() {
    let mut hub = hub();
    let (granted, other) = (DocumentId::random(), DocumentId::random());
    let grant = Grant {
        documents: Some([granted.clone()].into()),
        ..Grant::default()
    };
    let alice = connect_granted(&mut hub, "alice", false, grant);
    let effects = incoming(&mut hub, alice, sync_from("alice", &other));
    assert!(
        matches!(&effects[..], [HubEffect::Send(c, Message::DocUnavailable(_))] if *c == alice),
        "{effects:?}"
    );
    assert_eq!(hub.actor_of(&other), None);
    incoming(&mut hub, alice, sync_from("alice", &granted));
    assert!(hub.actor_of(&granted).is_some());
}

/// On a connection bound to its own id, an ephemeral message under another sender (what a
/// relay forwards elsewhere) closes the connection.
#[test]
fn a_sender_bound_connection_may_not_relay_others_ephemeral_messages() {
    let mut hub = hub();
    let grant = Grant {
        sender_bound: true,
        ..Grant::default()
    };
    let alice = connect_granted(&mut hub, "alice", true, grant);
    let message = Message::Ephemeral(EphemeralMessage {
        sender_id: PeerId::from("carol"),
        target_id: PeerId::from("server"),
        document_id: DocumentId::random(),
        data: MessageData::new(vec![0x01]).expect("not empty"),
        count: 1,
        session_id: SessionId::from_random(1),
    });
    let effects = incoming(&mut hub, alice, message);
    assert!(
        matches!(effects[..], [HubEffect::Close(c)] if c == alice),
        "{effects:?}"
    );
}

/// A denied document is answered `doc-unavailable` and never loaded.
#[test]
fn a_denied_document_is_unavailable_and_never_loaded() {
    let id = DocumentId::random();
    let mut hub = HubActor::new(PeerId::from("server"), [id.clone()].into());
    let alice = connect(&mut hub, "alice", false);
    let effects = incoming(&mut hub, alice, sync_from("alice", &id));
    assert!(
        matches!(&effects[..], [HubEffect::Send(c, Message::DocUnavailable(_))] if *c == alice),
        "{effects:?}"
    );
    assert_eq!(hub.actor_of(&id), None);
}

/// An ephemeral message seen once (from any hop) is not passed on again.
#[test]
fn an_ephemeral_message_is_passed_on_once() {
    let mut hub = hub();
    let alice = connect(&mut hub, "alice", true);
    let bob = connect(&mut hub, "bob", true);
    let id = DocumentId::random();
    let message = Message::Ephemeral(EphemeralMessage {
        sender_id: PeerId::from("carol"),
        target_id: PeerId::from("server"),
        document_id: id.clone(),
        data: MessageData::new(vec![0x01]).expect("not empty"),
        count: 7,
        session_id: SessionId::from_random(1),
    });
    let first = incoming(&mut hub, alice, message.clone());
    assert!(first.iter().any(|e| matches!(e, HubEffect::Tell { .. })));
    let again = incoming(&mut hub, bob, message);
    assert!(again.is_empty(), "{again:?}");
}

/// A peer offered nothing is introduced to what it touches. A document that unloads keeps its
/// introductions until the peer leaves (it is synced again when the document comes back); one
/// that does not exist is forgotten at once. Either way, the peer's departure reaches no
/// document that left memory.
#[test]
fn introductions_end_with_the_connection_or_a_document_that_does_not_exist() {
    let mut hub = hub();
    let alice = connect(&mut hub, "alice", false);
    let (kept, made_up) = (DocumentId::random(), DocumentId::random());
    let effects = incoming(&mut hub, alice, sync_from("alice", &kept));
    let (actor, _) = spawned(&effects).expect("loaded for the peer");
    step(
        &mut hub,
        HubInput::DocumentIdle {
            actor,
            available: true,
        },
    );
    step(&mut hub, HubInput::DocumentStopped(actor));
    let effects = incoming(&mut hub, alice, sync_from("alice", &made_up));
    let (actor, _) = spawned(&effects).expect("loaded for the peer");
    assert_eq!(hub.introductions(), 2);
    step(
        &mut hub,
        HubInput::DocumentIdle {
            actor,
            available: false,
        },
    );
    step(&mut hub, HubInput::DocumentStopped(actor));
    assert_eq!(hub.introductions(), 1);

    let effects = step(&mut hub, HubInput::Disconnected(alice));
    assert!(
        !effects.iter().any(|e| matches!(e, HubEffect::Tell { .. })),
        "{effects:?}"
    );
    assert_eq!(hub.introductions(), 0);
}

/// A document found here may be asked of every peer, even one offered nothing; one loaded for
/// a peer is offered only to peers offered everything.
#[test]
fn a_wanted_document_starts_with_every_peer() {
    let mut hub = hub();
    connect(&mut hub, "offered", true);
    connect(&mut hub, "not-offered", false);
    let wanted = DocumentId::random();
    let effects = find(&mut hub, &wanted);
    let peers = effects.iter().find_map(|e| match e {
        HubEffect::Spawn { peers, start, .. } => Some((peers.len(), *start)),
        _ => None,
    });
    assert_eq!(
        peers,
        Some((
            2,
            Start::Load {
                wanted_locally: true,
                networks_settling: false,
            }
        ))
    );
    let created = step(
        &mut hub,
        HubInput::Create {
            command: CommandId(3),
            document_id: DocumentId::random(),
        },
    );
    let peers = created.iter().find_map(|e| match e {
        HubEffect::Spawn { peers, .. } => Some(peers.len()),
        _ => None,
    });
    assert_eq!(peers, Some(1));
}

/// A flood of ephemeral messages from one connection is passed on only up to its allowance,
/// and a connection that keeps flooding is closed.
#[test]
fn an_ephemeral_flood_is_dropped_and_then_cut_off() {
    let mut hub = hub();
    let alice = connect(&mut hub, "alice", true);
    let id = DocumentId::random();
    find(&mut hub, &id);
    let now = Instant::now();
    let mut passed = 0;
    let mut closed = false;
    for count in 1..=u64::from(EPHEMERAL_BURST + EPHEMERAL_DROPS_BEFORE_CUT + 1) {
        let message = Message::Ephemeral(EphemeralMessage {
            sender_id: PeerId::from("alice"),
            target_id: PeerId::from("server"),
            document_id: id.clone(),
            data: MessageData::new(vec![0x01]).expect("not empty"),
            count,
            session_id: SessionId::from_random(1),
        });
        let effects = hub.handle(
            now,
            HubInput::Incoming {
                connection: alice,
                message,
            },
        );
        passed += effects
            .iter()
            .filter(|e| matches!(e, HubEffect::Tell { .. }))
            .count();
        if effects
            .iter()
            .any(|e| matches!(e, HubEffect::Close(c) if *c == alice))
        {
            closed = true;
            break;
        }
    }
    assert_eq!(passed, EPHEMERAL_BURST as usize);
    assert!(closed, "a flooding connection was never cut off");
}

/// A connection claiming the peer id of a connected cluster node is refused: it may not take
/// the node's link over (as a reconnecting client takes its own over). Another node link under
/// that id (the node reconnecting) still may.
#[test]
fn a_client_may_not_take_over_a_nodes_link() {
    let mut hub = hub();
    let connect = |hub: &mut HubActor, grant: Grant| {
        step(
            hub,
            HubInput::Connect {
                command: CommandId(9),
                peer: PeerId::from("node-b"),
                metadata: PeerMetadata::default(),
                grant,
            },
        )
    };
    let first = connect(&mut hub, Grant::cluster_node());
    assert!(matches!(first[0], HubEffect::Accepted { .. }), "{first:?}");
    let impostor = connect(&mut hub, Grant::default());
    assert!(
        matches!(&impostor[..], [HubEffect::Refused(CommandId(9))]),
        "{impostor:?}"
    );
    let again = connect(&mut hub, Grant::cluster_node());
    assert!(
        again
            .iter()
            .any(|e| matches!(e, HubEffect::Accepted { .. })),
        "{again:?}"
    );
}

/// A node the registry no longer lists is dropped, whichever node dialled, and refused until
/// it is listed again; a link made since the last report is spared once; clients are never
/// touched.
#[test]
fn links_of_nodes_no_longer_alive_are_closed() {
    let mut hub = hub();
    let join = |hub: &mut HubActor, peer: &str, grant: Grant| {
        accepted(&join_as(hub, peer, grant)).expect("accepted")
    };
    let live = |names: &[&str]| HubInput::LiveNodes {
        nodes: names.iter().map(|n| PeerId::from(*n)).collect(),
        command: CommandId(7),
    };
    let closed = |effects: &[HubEffect]| -> Vec<ConnectionId> {
        effects
            .iter()
            .filter_map(|e| match e {
                HubEffect::Close(connection) => Some(*connection),
                _ => None,
            })
            .collect()
    };
    let a = join(&mut hub, "node-a", Grant::cluster_node());
    let b = join(&mut hub, "node-b", Grant::cluster_node());
    join(&mut hub, "client", Grant::default());
    // Both links are new: spared, though neither node is listed yet.
    assert_eq!(closed(&step(&mut hub, live(&[]))), vec![]);
    assert_eq!(closed(&step(&mut hub, live(&["node-a", "node-b"]))), vec![]);
    // node-b falls silent; a link from node-c arrives before the registry lists it.
    let c = join(&mut hub, "node-c", Grant::cluster_node());
    let effects = step(&mut hub, live(&["node-a"]));
    assert_eq!(closed(&effects), vec![b]);
    assert!(effects
        .iter()
        .any(|e| matches!(e, HubEffect::PeerLeft(p) if p.as_str() == "node-b")));
    assert!(
        matches!(effects.last(), Some(HubEffect::Completed(CommandId(7)))),
        "completed once the links are closed: {effects:?}"
    );
    // node-b links again: refused while it is not listed.
    let refused = join_as(&mut hub, "node-b", Grant::cluster_node());
    assert!(
        matches!(&refused[..], [HubEffect::Refused(_)]),
        "{refused:?}"
    );
    // node-c is listed from then on; node-a falls silent too.
    assert_eq!(closed(&step(&mut hub, live(&["node-c"]))), vec![a]);
    assert_eq!(closed(&step(&mut hub, live(&["node-c"]))), vec![]);
    // The transport's own report of the closed link changes nothing more.
    assert!(step(&mut hub, HubInput::Disconnected(b)).is_empty());
    assert_eq!(closed(&step(&mut hub, live(&[]))), vec![c]);
    // Listed again, node-b is admitted again.
    step(&mut hub, live(&["node-b"]));
    join(&mut hub, "node-b", Grant::cluster_node());
    // node-c, never listed again, is forgotten after enough reports (it may have died).
    let refused = join_as(&mut hub, "node-c", Grant::cluster_node());
    assert!(
        matches!(&refused[..], [HubEffect::Refused(_)]),
        "{refused:?}"
    );
    for _ in 1..actor::REFUSED_FOR_REPORTS {
        step(&mut hub, live(&["node-b"]));
    }
    join(&mut hub, "node-c", Grant::cluster_node());
}

/// A document looked for while client transports make their first attempt waits for them, and
/// for the peer that joined meanwhile to be introduced to it (the policy answered for it)
/// before it is told to stop waiting.
#[test]
fn a_find_while_networks_settle_waits_for_them_and_for_the_peer_that_joined() {
    let mut hub = hub();
    step(&mut hub, HubInput::NetworksSettling(true));
    let wanted = DocumentId::random();
    let effects = find(&mut hub, &wanted);
    let (actor, start) = effects
        .iter()
        .find_map(|e| match e {
            HubEffect::Spawn { actor, start, .. } => Some((*actor, *start)),
            _ => None,
        })
        .expect("spawned");
    assert_eq!(
        start,
        Start::Load {
            wanted_locally: true,
            networks_settling: true,
        }
    );

    // The server joins; the policy has not answered for it yet when the transport settles.
    let joined = step(
        &mut hub,
        HubInput::Connect {
            command: CommandId(5),
            peer: PeerId::from("the-server"),
            metadata: PeerMetadata::default(),
            grant: Grant::default(),
        },
    );
    let question = joined
        .iter()
        .find_map(|e| match e {
            HubEffect::Ask { question, .. } => Some(*question),
            _ => None,
        })
        .expect("asked");
    let settled = |effects: &[HubEffect]| {
        effects.iter().any(|e| {
            matches!(e, HubEffect::Tell { actor: a, event: DocumentEvent::NetworksSettled } if *a == actor)
        })
    };
    let effects = step(&mut hub, HubInput::NetworksSettling(false));
    assert!(
        !settled(&effects),
        "told before the new peer was introduced"
    );

    // The answer introduces the peer to the document, then lets it stop waiting.
    let effects = step(
        &mut hub,
        HubInput::Answered {
            question,
            allowed: false,
        },
    );
    let introduced = effects.iter().position(|e| {
        matches!(e, HubEffect::Tell { actor: a, event: DocumentEvent::PeerConnected { .. } } if *a == actor)
    });
    let released = effects.iter().position(|e| {
        matches!(e, HubEffect::Tell { actor: a, event: DocumentEvent::NetworksSettled } if *a == actor)
    });
    assert!(
        matches!((introduced, released), (Some(i), Some(r)) if i < r),
        "expected the peer, then the release: {effects:?}"
    );

    // Once settled, a new find does not wait.
    let other = find(&mut hub, &DocumentId::random());
    assert!(other.iter().any(|e| matches!(
        e,
        HubEffect::Spawn {
            start: Start::Load {
                networks_settling: false,
                ..
            },
            ..
        }
    )));
}

/// A peer that joined before the transports began settling, whose policy answer is slow, does
/// not hold back the documents waiting for them: only peers that joined meanwhile do.
#[test]
fn only_peers_joined_while_settling_hold_the_release() {
    let mut hub = hub();
    let slow = step(
        &mut hub,
        HubInput::Connect {
            command: CommandId(7),
            peer: PeerId::from("slow-policy"),
            metadata: PeerMetadata::default(),
            grant: Grant::default(),
        },
    );
    assert!(slow.iter().any(|e| matches!(e, HubEffect::Ask { .. })));
    step(&mut hub, HubInput::NetworksSettling(true));
    let spawned = find(&mut hub, &DocumentId::random());
    let actor = spawned
        .iter()
        .find_map(|e| match e {
            HubEffect::Spawn { actor, .. } => Some(*actor),
            _ => None,
        })
        .expect("spawned");
    let effects = step(&mut hub, HubInput::NetworksSettling(false));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            HubEffect::Tell { actor: a, event: DocumentEvent::NetworksSettled } if *a == actor
        )),
        "held back by a peer that joined before: {effects:?}"
    );
}

/// A document already in memory, found again while transports settle, is told to wait before
/// it is asked to request again.
#[test]
fn a_document_in_memory_found_while_settling_waits_too() {
    let mut hub = hub();
    let id = DocumentId::random();
    find(&mut hub, &id);
    step(&mut hub, HubInput::NetworksSettling(true));
    let effects = step(
        &mut hub,
        HubInput::Find {
            command: CommandId(9),
            document_id: id.clone(),
            mode: FindMode::Wanted { again: true },
        },
    );
    let wait = effects.iter().position(|e| {
        matches!(
            e,
            HubEffect::Tell {
                event: DocumentEvent::AwaitNetworks,
                ..
            }
        )
    });
    let again = effects.iter().position(|e| {
        matches!(
            e,
            HubEffect::Tell {
                event: DocumentEvent::RequestAgain(_),
                ..
            }
        )
    });
    assert!(
        matches!((wait, again), (Some(w), Some(a)) if w < a),
        "expected the wait, then the request: {effects:?}"
    );
}
