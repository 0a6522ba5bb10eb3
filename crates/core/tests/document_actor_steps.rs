//! One document actor driven input by input, for orders of events a network of nodes does not
//! produce on its own (the repo's hub and the document's task run apart, so an input can
//! arrive between an effect and the hub acting on it).

use std::sync::Arc;
use std::time::Instant;

use automerge::sync::{self, SyncDoc};
use automerge::Automerge;
use tandem_core::document::{
    DocumentActor, DocumentConfig, DocumentEffect, DocumentInput, PeerInfo, QuestionId,
    ShareAnswer, ShareQuestion, Start,
};
use tandem_core::persistence::Loaded;
use tandem_core::sync::HandleState;
use tandem_core::{
    Access, DocumentId, Message, MessageData, PeerId, PeerMetadata, SessionId, SyncMessage,
};

fn metadata() -> PeerMetadata {
    PeerMetadata {
        storage_id: None,
        is_ephemeral: true,
    }
}

/// The answer to a policy question: "offer it, read and write".
fn answered(question: QuestionId, ask: &ShareQuestion) -> DocumentInput {
    let answer = match ask {
        ShareQuestion::Announce => ShareAnswer::Announce(true),
        ShareQuestion::Access => ShareAnswer::Access(Access::ReadWrite),
    };
    DocumentInput::Answered { question, answer }
}

/// Feeds `input`, answering every policy question with "offer it, read and write", until the
/// actor asks nothing more; every effect along the way.
fn feed(
    actor: &mut DocumentActor,
    doc: &mut Automerge,
    now: Instant,
    input: DocumentInput,
) -> Vec<DocumentEffect> {
    let mut all = Vec::new();
    let mut next = Some(input);
    while let Some(input) = next.take() {
        for effect in actor.handle(now, input, doc) {
            if let DocumentEffect::Ask { question, ask, .. } = &effect {
                next = Some(answered(*question, ask));
            }
            all.push(effect);
        }
    }
    all
}

/// A document looked for in storage only (the hub's `FindMode::Stored`), offered to one peer
/// that holds it, after storage said it lacks it: unavailable, and the peer was asked nothing.
fn missed_in_storage() -> (DocumentActor, Automerge, DocumentId, Instant) {
    let config = Arc::new(DocumentConfig::new(
        PeerId::from("server"),
        SessionId::random(),
    ));
    let id = DocumentId::random();
    let mut doc = Automerge::new();
    let now = Instant::now();
    let holder = PeerInfo {
        peer: PeerId::from("holder"),
        metadata: metadata(),
        announce_any: true,
        granted: Access::ReadWrite,
        synced_before: false,
        cluster_node: false,
    };
    let mut actor = DocumentActor::new(
        config,
        id.clone(),
        Start::Load {
            wanted_locally: false,
            networks_settling: false,
        },
        vec![holder],
        &doc,
        now,
    );
    let mut effects = actor.start(now, &mut doc);
    while let Some(i) = effects
        .iter()
        .position(|e| matches!(e, DocumentEffect::Ask { .. }))
    {
        let DocumentEffect::Ask { question, ask, .. } = effects.remove(i) else {
            unreachable!()
        };
        effects.extend(feed(&mut actor, &mut doc, now, answered(question, &ask)));
    }
    let loaded = Loaded {
        ledger: None,
        found: false,
        deleted: false,
    };
    let effects = feed(&mut actor, &mut doc, now, DocumentInput::Loaded(loaded));
    assert!(effects
        .iter()
        .any(|e| matches!(e, DocumentEffect::State(HandleState::Unavailable))));
    assert!(
        !effects.iter().any(|e| matches!(e, DocumentEffect::Send(_))),
        "asked a peer: {effects:?}"
    );

    (actor, doc, id, now)
}

/// A document looked for in storage only, which storage lacks, is unavailable without asking
/// the peer it is offered to. A request arriving before the hub takes it out of memory is
/// answered `doc-unavailable` at once: the asker does not wait out its find timeout on a
/// server that asked nobody.
#[test]
fn a_request_after_a_storage_only_miss_is_answered_at_once() {
    let (mut actor, mut doc, id, now) = missed_in_storage();
    let empty = Automerge::new();
    let request = empty
        .generate_sync_message(&mut sync::State::new())
        .expect("a first message");
    let asker = PeerId::from("asker");
    let effects = feed(
        &mut actor,
        &mut doc,
        now,
        DocumentInput::Incoming {
            from: asker.clone(),
            metadata: metadata(),
            granted: Access::ReadWrite,
            message: Message::Request(SyncMessage {
                sender_id: asker.clone(),
                target_id: PeerId::from("server"),
                document_id: id,
                data: MessageData::new(request.encode()).expect("not empty"),
            }),
        },
    );
    assert!(
        effects.iter().any(|e| matches!(
            e,
            DocumentEffect::Send(Message::DocUnavailable(m)) if m.target_id == asker
        )),
        "the asker was not told: {effects:?}"
    );
}

/// The application looking for the document after a storage-only miss: every peer is asked now.
#[test]
fn wanted_here_after_a_storage_only_miss_asks_the_peers() {
    let (mut actor, mut doc, _, now) = missed_in_storage();
    let effects = feed(&mut actor, &mut doc, now, DocumentInput::WantedLocally);
    assert!(
        effects.iter().any(|e| matches!(
            e,
            DocumentEffect::Send(Message::Request(m) | Message::Sync(m))
                if m.target_id == PeerId::from("holder")
        )),
        "the holder was not asked: {effects:?}"
    );
}

/// A document looked for here while client transports make their first attempt, with no peer
/// yet and nothing in storage: it stays requested until they have, then is unavailable; a peer
/// that joins meanwhile is asked for it.
#[test]
fn a_find_while_networks_settle_waits_for_them() {
    let config = Arc::new(DocumentConfig::new(
        PeerId::from("app"),
        SessionId::random(),
    ));
    let start = Start::Load {
        wanted_locally: true,
        networks_settling: true,
    };
    let missing = || Loaded {
        ledger: None,
        found: false,
        deleted: false,
    };
    let now = Instant::now();
    let state = |effects: &[DocumentEffect]| {
        effects.iter().rev().find_map(|e| match e {
            DocumentEffect::State(state) => Some(*state),
            _ => None,
        })
    };

    // Nobody joins: requested until the transports settle, then unavailable.
    let mut doc = Automerge::new();
    let mut actor = DocumentActor::new(
        config.clone(),
        DocumentId::random(),
        start,
        vec![],
        &doc,
        now,
    );
    actor.start(now, &mut doc);
    let effects = feed(&mut actor, &mut doc, now, DocumentInput::Loaded(missing()));
    assert_eq!(state(&effects), Some(HandleState::Requesting));
    let effects = feed(&mut actor, &mut doc, now, DocumentInput::NetworksSettled);
    assert_eq!(state(&effects), Some(HandleState::Unavailable));

    // The server joins before they settle: it is asked, and the document stays requested.
    let mut doc = Automerge::new();
    let mut actor = DocumentActor::new(config, DocumentId::random(), start, vec![], &doc, now);
    actor.start(now, &mut doc);
    feed(&mut actor, &mut doc, now, DocumentInput::Loaded(missing()));
    let server = PeerInfo {
        peer: PeerId::from("server"),
        metadata: metadata(),
        announce_any: false,
        granted: Access::ReadWrite,
        synced_before: false,
        cluster_node: false,
    };
    let effects = feed(
        &mut actor,
        &mut doc,
        now,
        DocumentInput::PeerConnected(server),
    );
    assert!(
        effects.iter().any(|e| matches!(
            e,
            DocumentEffect::Send(Message::Request(m)) if m.target_id == PeerId::from("server")
        )),
        "the server was not asked: {effects:?}"
    );
    let effects = feed(&mut actor, &mut doc, now, DocumentInput::NetworksSettled);
    assert_ne!(state(&effects), Some(HandleState::Unavailable));
}

/// A change over the quota is reported ([`DocumentEffect::Refused`], which the server counts)
/// before the answer to the message that carried it goes out: whoever hears the answer finds
/// the refusal already counted.
#[test]
fn a_refused_change_is_reported_before_the_answer() {
    use automerge::transaction::Transactable;
    let mut config = DocumentConfig::new(PeerId::from("server"), SessionId::random());
    config.quota.max_change_bytes = Some(1000);
    let id = DocumentId::random();
    let mut doc = Automerge::new();
    doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(automerge::ROOT, "n", 1))
        .expect("a valid transaction");
    let now = Instant::now();
    let mut actor = DocumentActor::new(
        Arc::new(config),
        id.clone(),
        Start::Created,
        Vec::new(),
        &doc,
        now,
    );
    actor.start(now, &mut doc);
    let writer = PeerId::from("writer");
    let mut theirs = doc.fork();
    theirs
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "big", "y".repeat(5000))
        })
        .expect("a valid transaction");
    let mut state = sync::State::new();
    for _ in 0..5 {
        let Some(message) = theirs.generate_sync_message(&mut state) else {
            break;
        };
        let effects = feed(
            &mut actor,
            &mut doc,
            now,
            DocumentInput::Incoming {
                from: writer.clone(),
                metadata: metadata(),
                granted: Access::ReadWrite,
                message: Message::Sync(SyncMessage {
                    sender_id: writer.clone(),
                    target_id: PeerId::from("server"),
                    document_id: id.clone(),
                    data: MessageData::new(message.encode()).expect("not empty"),
                }),
            },
        );
        let to_writer = |e: &DocumentEffect| matches!(e, DocumentEffect::Send(Message::Sync(m)) if m.target_id == writer);
        if let Some(refused) = effects
            .iter()
            .position(|e| matches!(e, DocumentEffect::Refused { .. }))
        {
            let answer = effects.iter().position(to_writer).expect("an answer");
            assert!(refused < answer, "answered before reporting: {effects:?}");
            return;
        }
        for effect in effects.iter().filter(|e| to_writer(e)) {
            let DocumentEffect::Send(Message::Sync(m)) = effect else {
                unreachable!()
            };
            let answer = sync::Message::decode(m.data.as_bytes()).expect("a sync message");
            theirs
                .receive_sync_message(&mut state, answer)
                .expect("the answer applies");
        }
    }
    panic!("the change was never refused");
}
