//! Remote-heads gossip driven step by step: a client subscribes through a server to the storage
//! of another client, and hears that client's heads as the server syncs with it.

use automerge::{transaction::Transactable, AutoCommit, ChangeHash, ROOT};
use tandem_core::sync::{GossipOutput, RemoteHeadsGossip};
use tandem_core::{DocumentId, Message, PeerId, RemoteHeads, StorageId, UrlHead};

fn heads() -> Vec<ChangeHash> {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "n", 1).unwrap();
    doc.get_heads()
}

fn targets(out: &GossipOutput, kind: &str) -> Vec<String> {
    out.messages
        .iter()
        .filter(|m| m.type_name() == kind)
        .map(|m| m.target_id().unwrap().to_string())
        .collect()
}

/// Delivers every message `out` addresses to `to` (whose peer id is `to_id`).
fn deliver(out: &GossipOutput, to_id: &PeerId, to: &mut RemoteHeadsGossip) -> GossipOutput {
    let mut result = GossipOutput::default();
    for message in &out.messages {
        if message.target_id() != Some(to_id) {
            continue;
        }
        let next = match message {
            Message::RemoteSubscriptionChange(m) => to.receive_subscription_change(m),
            Message::RemoteHeadsChanged(m) => to.receive_remote_heads(m),
            _ => continue,
        };
        result.messages.extend(next.messages);
        result.heads_changed.extend(next.heads_changed);
    }
    result
}

#[test]
fn a_subscriber_hears_the_heads_its_server_sees() {
    let server_id = PeerId::from("server");
    let client_id = PeerId::from("client");
    let writer = StorageId::from("writer-storage");
    let doc = DocumentId::random();
    let mut server = RemoteHeadsGossip::new(server_id.clone());
    let mut client = RemoteHeadsGossip::new(client_id.clone());

    // The client shares with the server (generous); the server announces to nobody.
    let out = client.add_generous_peer(server_id.clone());
    assert!(out.messages.is_empty(), "nothing to say before subscribing");
    let out = client.subscribe([writer.clone()]);
    assert_eq!(targets(&out, "remote-subscription-change"), ["server"]);
    match &out.messages[0] {
        Message::RemoteSubscriptionChange(m) => {
            assert_eq!(m.add.as_deref(), Some(&[writer.clone()][..]));
            assert_eq!(m.remove, None, "a subscriber sends `remove: undefined`");
        }
        other => panic!("unexpected {other:?}"),
    }
    let relayed = deliver(&out, &server_id, &mut server);
    assert!(
        relayed.messages.is_empty(),
        "the server has no generous peers"
    );

    // The server sees the writer's heads before the client opened the document: kept, not sent.
    let h = heads();
    let (out, _) = server.direct_heads(&doc, &writer, &h, 1_000);
    assert!(out.messages.is_empty());
    // When the client opens the document it is told what the server knows.
    let out = server.peer_opened(&client_id, &doc);
    assert_eq!(targets(&out, "remote-heads-changed"), ["client"]);
    let learned = deliver(&out, &client_id, &mut client);
    assert_eq!(learned.heads_changed.len(), 1);
    let (d, s, r) = &learned.heads_changed[0];
    assert_eq!((d, s), (&doc, &writer));
    assert_eq!(r.heads, h.iter().map(UrlHead::from).collect::<Vec<_>>());
    assert_eq!(r.timestamp, 1_000);

    // Heads seen again within the same millisecond still count as news.
    let (out, stamped) = server.direct_heads(&doc, &writer, &h, 1_000);
    assert_eq!(stamped, 1_001);
    assert_eq!(
        deliver(&out, &client_id, &mut client).heads_changed.len(),
        1
    );
    assert_eq!(client.known_heads(&doc, &writer).unwrap().timestamp, 1_001);

    // Later heads go straight out; an older record is ignored by the client.
    let (out, _) = server.direct_heads(&doc, &writer, &h, 2_000);
    assert_eq!(targets(&out, "remote-heads-changed"), ["client"]);
    assert_eq!(
        deliver(&out, &client_id, &mut client).heads_changed.len(),
        1
    );
    let stale = Message::RemoteHeadsChanged(tandem_core::RemoteHeadsChangedMessage {
        sender_id: server_id.clone(),
        target_id: client_id.clone(),
        document_id: doc.clone(),
        new_heads: vec![(
            writer.clone(),
            RemoteHeads {
                heads: vec![],
                timestamp: 1_500,
            },
        )],
    });
    let stale = GossipOutput {
        messages: vec![stale],
        heads_changed: vec![],
    };
    assert!(deliver(&stale, &client_id, &mut client)
        .heads_changed
        .is_empty());
    assert_eq!(client.known_heads(&doc, &writer).unwrap().timestamp, 2_000);
}

#[test]
fn subscriptions_are_relayed_once_and_withdrawn_when_the_last_subscriber_leaves() {
    let hub_id = PeerId::from("hub");
    let mut hub = RemoteHeadsGossip::new(hub_id.clone());
    let upstream = PeerId::from("upstream");
    let storage = StorageId::from("s");
    assert!(hub.add_generous_peer(upstream.clone()).messages.is_empty());

    let change = |from: &str, add: Option<Vec<StorageId>>, remove: Option<Vec<StorageId>>| {
        tandem_core::RemoteSubscriptionChangeMessage {
            sender_id: PeerId::from(from),
            target_id: hub_id.clone(),
            add,
            remove,
        }
    };
    let out = hub.receive_subscription_change(&change("a", Some(vec![storage.clone()]), None));
    assert_eq!(targets(&out, "remote-subscription-change"), ["upstream"]);
    // A second subscriber to the same storage is not news upstream.
    let out = hub.receive_subscription_change(&change("b", Some(vec![storage.clone()]), None));
    assert!(out.messages.is_empty());
    // One leaves: still wanted. The other unsubscribes: withdrawn upstream.
    assert!(hub.remove_peer(&PeerId::from("a")).messages.is_empty());
    let out = hub.receive_subscription_change(&change("b", None, Some(vec![storage.clone()])));
    assert_eq!(targets(&out, "remote-subscription-change"), ["upstream"]);
    match &out.messages[0] {
        Message::RemoteSubscriptionChange(m) => {
            assert_eq!(m.remove.as_deref(), Some(&[storage.clone()][..]));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn gossip_about_unwanted_storages_is_dropped_and_wanted_gossip_is_relayed_onwards() {
    let hub_id = PeerId::from("hub");
    let mut hub = RemoteHeadsGossip::new(hub_id.clone());
    let doc = DocumentId::random();
    let wanted = StorageId::from("wanted");
    let unwanted = StorageId::from("unwanted");
    hub.add_generous_peer(PeerId::from("left"));
    hub.add_generous_peer(PeerId::from("right"));
    hub.receive_subscription_change(&tandem_core::RemoteSubscriptionChangeMessage {
        sender_id: PeerId::from("sub"),
        target_id: hub_id.clone(),
        add: Some(vec![wanted.clone()]),
        remove: None,
    });
    hub.peer_opened(&PeerId::from("sub"), &doc);
    let record = RemoteHeads {
        heads: vec![],
        timestamp: 7,
    };
    let message = tandem_core::RemoteHeadsChangedMessage {
        sender_id: PeerId::from("left"),
        target_id: hub_id.clone(),
        document_id: doc.clone(),
        new_heads: vec![
            (unwanted.clone(), record.clone()),
            (wanted.clone(), record.clone()),
        ],
    };
    let out = hub.receive_remote_heads(&message);
    assert!(
        out.heads_changed.is_empty(),
        "the hub itself did not subscribe"
    );
    let mut sent = targets(&out, "remote-heads-changed");
    sent.sort();
    assert_eq!(sent, ["right", "sub"], "not back to the sender");
    assert!(hub.known_heads(&doc, &unwanted).is_none());
    // The same record again is not news.
    assert!(hub.receive_remote_heads(&message).messages.is_empty());
}

#[test]
fn a_timestamp_at_the_end_of_time_does_not_overflow() {
    let hub_id = PeerId::from("hub");
    let mut hub = RemoteHeadsGossip::new(hub_id.clone());
    let doc = DocumentId::random();
    let storage = StorageId::from("s");
    hub.subscribe([storage.clone()]);
    hub.receive_remote_heads(&tandem_core::RemoteHeadsChangedMessage {
        sender_id: PeerId::from("liar"),
        target_id: hub_id,
        document_id: doc.clone(),
        new_heads: vec![(
            storage.clone(),
            RemoteHeads {
                heads: vec![],
                timestamp: u64::MAX,
            },
        )],
    });
    let (_, stamped) = hub.direct_heads(&doc, &storage, &heads(), 5);
    assert_eq!(stamped, u64::MAX);
}

#[test]
fn a_forgotten_document_holds_nothing_and_is_announced_again_when_reopened() {
    let server_id = PeerId::from("server");
    let subscriber = PeerId::from("subscriber");
    let writer = StorageId::from("writer-storage");
    let mut server = RemoteHeadsGossip::new(server_id.clone());
    let mut subscriber_side = RemoteHeadsGossip::new(subscriber.clone());
    subscriber_side.add_generous_peer(server_id.clone());
    let out = subscriber_side.subscribe([writer.clone()]);
    deliver(&out, &server_id, &mut server);

    let documents: Vec<DocumentId> = (0..100).map(|_| DocumentId::random()).collect();
    for (i, document) in documents.iter().enumerate() {
        server.peer_opened(&subscriber, document);
        let (out, _) = server.direct_heads(document, &writer, &heads(), 1_000 + i as u64);
        assert_eq!(targets(&out, "remote-heads-changed"), ["subscriber"]);
    }
    assert_eq!(server.documents_held(), 100);
    for document in &documents {
        server.forget_document(document);
    }
    assert_eq!(server.documents_held(), 0);
    assert!(server.known_heads(&documents[0], &writer).is_none());

    // Loaded again: the writer syncs, the subscriber reopens, and it hears the heads again.
    let (out, _) = server.direct_heads(&documents[0], &writer, &heads(), 5_000);
    assert!(
        out.messages.is_empty(),
        "the subscriber has not reopened it yet"
    );
    let out = server.peer_opened(&subscriber, &documents[0]);
    assert_eq!(targets(&out, "remote-heads-changed"), ["subscriber"]);
}

#[test]
fn a_relay_subscribed_itself_keeps_the_subscription_when_its_last_subscriber_leaves() {
    let relay_id = PeerId::from("relay");
    let upstream = PeerId::from("upstream");
    let client = PeerId::from("client");
    let writer = StorageId::from("writer-storage");
    let mut relay = RemoteHeadsGossip::new(relay_id.clone());
    relay.add_generous_peer(upstream.clone());

    // The relay's own application subscribes, then a client subscribes to the same storage
    // through it.
    let out = relay.subscribe([writer.clone()]);
    assert_eq!(targets(&out, "remote-subscription-change"), ["upstream"]);
    relay.receive_subscription_change(&tandem_core::RemoteSubscriptionChangeMessage {
        sender_id: client.clone(),
        target_id: relay_id.clone(),
        add: Some(vec![writer.clone()]),
        remove: None,
    });

    // The client leaves: the relay still wants the writer's heads, so upstream hears nothing.
    let out = relay.remove_peer(&client);
    assert!(
        targets(&out, "remote-subscription-change").is_empty(),
        "the relay unsubscribed upstream from a storage its own application still wants: {out:?}"
    );
    assert!(relay.subscriptions().any(|s| *s == writer));

    // Once the application unsubscribes too, upstream is told.
    let out = relay.unsubscribe([writer.clone()]);
    assert_eq!(targets(&out, "remote-subscription-change"), ["upstream"]);
}
