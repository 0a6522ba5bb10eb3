//! The codec on hostile and unusual input: what the JS decoder tolerates we tolerate, what is
//! broken is a typed error (never a panic), and what we write follows cbor-x's rules.

use crate::common::{fixture, hex_of};
use automerge::ChangeHash;
use proptest::prelude::*;
use tandem_core::*;

fn h(hex: &str) -> Vec<u8> {
    hex::decode(hex.replace(' ', "")).expect("hex")
}

/// CBOR text string.
fn t(s: &str) -> Vec<u8> {
    let mut out = if s.len() < 24 {
        vec![0x60 + s.len() as u8]
    } else {
        vec![0x78, s.len() as u8]
    };
    out.extend_from_slice(s.as_bytes());
    out
}

/// A minimal-header map (what ciborium or a hand-written client produces) of text keys.
fn map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0xa0 + entries.len() as u8];
    for (k, v) in entries {
        out.extend(t(k));
        out.extend_from_slice(v);
    }
    out
}

const DOC: &str = "2kGRUrX8w2KjaHC3xek1kijSVeee";

fn sync_entries() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("type", t("sync")),
        ("senderId", t("a")),
        ("targetId", t("b")),
        ("documentId", t(DOC)),
        ("data", h("43 010203")),
    ]
}

#[test]
fn minimal_headers_any_key_order_and_unknown_keys_are_accepted() {
    let mut entries = sync_entries();
    entries.reverse();
    entries.push(("extra", t("ignored")));
    let Message::Sync(m) = Message::decode(&map(&entries)).expect("decodes") else {
        panic!("a sync")
    };
    assert_eq!(
        (
            m.sender_id.as_str(),
            m.target_id.as_str(),
            m.document_id.as_str()
        ),
        ("a", "b", DOC)
    );
    assert_eq!(m.data.as_bytes(), &[1, 2, 3]);
}

#[test]
fn indefinite_maps_arrays_and_tagged_bytes_are_accepted() {
    let mut frame = vec![0xbf];
    for (k, v) in [
        ("type", t("remote-subscription-change")),
        ("senderId", t("a")),
        ("targetId", t("b")),
    ] {
        frame.extend(t(k));
        frame.extend(v);
    }
    frame.extend(t("add"));
    frame.extend([0x9f]);
    frame.extend(t("x"));
    frame.extend([0xff, 0xff]);
    let Message::RemoteSubscriptionChange(m) = Message::decode(&frame).expect("decodes") else {
        panic!()
    };
    assert_eq!(m.add, Some(vec![StorageId::from("x")]));
    assert_eq!(m.remove, None);

    let mut entries = sync_entries();
    entries[4].1 = h("d840 43 010203");
    let Message::Sync(m) = Message::decode(&map(&entries)).expect("tag 64 bytes") else {
        panic!()
    };
    assert_eq!(m.data.as_bytes(), &[1, 2, 3]);
    entries[4].1 = h("83 01 02 03");
    let Message::Sync(m) = Message::decode(&map(&entries)).expect("array of byte values") else {
        panic!()
    };
    assert_eq!(m.data.as_bytes(), &[1, 2, 3]);
}

#[test]
fn duplicate_keys_resolve_to_the_last() {
    let mut entries = sync_entries();
    entries.insert(0, ("senderId", t("first")));
    entries.push(("senderId", t("last")));
    assert_eq!(
        Message::decode(&map(&entries))
            .unwrap()
            .sender_id()
            .as_str(),
        "last"
    );
}

#[test]
fn null_and_undefined_mean_absent() {
    for absent in [0xf6u8, 0xf7] {
        let frame = map(&[
            ("type", t("join")),
            ("senderId", t("c")),
            (
                "peerMetadata",
                map(&[("storageId", vec![absent]), ("isEphemeral", vec![0xf5])]),
            ),
            ("supportedProtocolVersions", vec![absent]),
        ]);
        let Message::Join(j) = Message::decode(&frame).expect("decodes") else {
            panic!()
        };
        assert_eq!(
            j.peer_metadata,
            PeerMetadata {
                storage_id: None,
                is_ephemeral: true
            }
        );
        assert_eq!(j.supported_protocol_versions, None);
    }
}

#[test]
fn numbers_as_floats_and_uint64_heads_are_accepted() {
    let ephemeral = |count: Vec<u8>| {
        map(&[
            ("type", t("ephemeral")),
            ("senderId", t("a")),
            ("targetId", t("b")),
            ("documentId", t(DOC)),
            ("data", h("41 00")),
            ("count", count),
            ("sessionId", t("s")),
        ])
    };
    for (encoding, expected) in [
        ("05", 5u64),
        ("1a00000005", 5),
        ("1b0000000000000005", 5),
        ("fb4014000000000000", 5),
    ] {
        let Message::Ephemeral(m) = Message::decode(&ephemeral(h(encoding))).expect(encoding)
        else {
            panic!()
        };
        assert_eq!(m.count, expected, "{encoding}");
    }
    for bad in ["fb3ff8000000000000", "20", "f97e00", "64 74657874"] {
        assert!(
            matches!(
                Message::decode(&ephemeral(h(bad))),
                Err(DecodeError::WrongType { field: "count", .. })
            ),
            "count {bad} is refused"
        );
    }
    let heads = |timestamp: Vec<u8>| {
        map(&[
            ("type", t("remote-heads-changed")),
            ("senderId", t("a")),
            ("targetId", t("b")),
            ("documentId", t(DOC)),
            (
                "newHeads",
                map(&[(
                    "sid",
                    map(&[("heads", vec![0x80]), ("timestamp", timestamp)]),
                )]),
            ),
        ])
    };
    for (encoding, expected) in [
        ("fb4278bcfe56800000", 1_700_000_000_000u64),
        ("1b0000018bcfe56800", 1_700_000_000_000),
    ] {
        let Message::RemoteHeadsChanged(m) = Message::decode(&heads(h(encoding))).expect(encoding)
        else {
            panic!()
        };
        assert_eq!(m.new_heads[0].1.timestamp, expected);
    }
}

#[test]
fn broken_frames_are_typed_errors() {
    use DecodeError::*;
    type Expect = fn(&DecodeError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty", vec![], |e| matches!(e, MalformedCbor(_))),
        ("break code", h("ffff1c"), |e| matches!(e, MalformedCbor(_))),
        ("array", h("826473796e6301"), |e| matches!(e, NotAMap)),
        ("number", h("01"), |e| matches!(e, NotAMap)),
        ("string", t("sync"), |e| matches!(e, NotAMap)),
        ("bool", h("f5"), |e| matches!(e, NotAMap)),
        ("no type", map(&[("senderId", t("a"))]), |e| {
            matches!(e, MissingType)
        }),
        ("type not text", map(&[("type", h("01"))]), |e| {
            matches!(e, MissingType)
        }),
        (
            "leave",
            map(&[("type", t("leave")), ("senderId", t("a"))]),
            |e| matches!(e, UnknownType(t) if t == "leave"),
        ),
        (
            "trailing",
            [map(&sync_entries()), vec![0x00]].concat(),
            |e| matches!(e, TrailingBytes(1)),
        ),
        ("huge bytes length", h("5bffffffffffffffff00"), |e| {
            matches!(e, MalformedCbor(_))
        }),
        ("huge map length", h("bbffffffffffffffff"), |e| {
            matches!(e, MalformedCbor(_))
        }),
        (
            "deep nesting",
            [vec![0x81; 100_000], vec![0x00]].concat(),
            |e| matches!(e, MalformedCbor(_)),
        ),
    ];
    for (name, frame, expected) in cases {
        let err = Message::decode(&frame).expect_err(name);
        assert!(expected(&err), "{name}: unexpected error {err:?}");
    }

    let with = |key: &'static str, value: Vec<u8>| {
        let mut entries = sync_entries();
        entries.retain(|(k, _)| *k != key);
        entries.push((key, value));
        map(&entries)
    };
    let without = |key: &'static str| {
        map(&sync_entries()
            .into_iter()
            .filter(|(k, _)| *k != key)
            .collect::<Vec<_>>())
    };
    for key in ["senderId", "targetId", "documentId", "data"] {
        assert!(
            matches!(Message::decode(&without(key)), Err(MissingField { field, .. }) if field == key),
            "{key}"
        );
        assert!(
            matches!(Message::decode(&with(key, vec![0xf7])), Err(MissingField { field, .. }) if field == key)
        );
    }
    assert!(matches!(
        Message::decode(&with("data", t("abc"))),
        Err(WrongType { field: "data", .. })
    ));
    assert!(
        matches!(
            Message::decode(&with("data", h("40"))),
            Err(WrongType { field: "data", .. })
        ),
        "zero-length data"
    );
    assert!(matches!(
        Message::decode(&with("senderId", h("01"))),
        Err(WrongType {
            field: "senderId",
            ..
        })
    ));
    assert!(matches!(
        Message::decode(&with(
            "documentId",
            t("7d52c1a6-f3b3-4b0e-9a1f-2a3b4c5d6e7f")
        )),
        Err(InvalidDocumentId(_))
    ));
    assert!(matches!(
        Message::decode(&with("documentId", t("2kGRUrX8w2KjaHC3xek1kijSVeea"))),
        Err(InvalidDocumentId(_))
    ));
}

#[test]
fn every_truncation_of_every_captured_frame_is_an_error() {
    let examples = fixture("messages_examples.json");
    for example in examples["examples"].as_array().unwrap() {
        let frame = hex_of(&example["hex"]);
        for len in 0..frame.len() {
            assert!(
                Message::decode(&frame[..len]).is_err(),
                "{} truncated to {len}",
                example["label"]
            );
        }
    }
}

#[test]
fn number_encodings_match_cbor_x() {
    let choices = &fixture("cbor_encoding.json")["encodeChoices"];
    for (name, value) in [
        ("int23", 23u64),
        ("int24", 24),
        ("int255", 255),
        ("int256", 256),
        ("int65535", 65535),
        ("int65536", 65536),
        ("int2pow32minus1", u32::MAX as u64),
        ("int2pow32", 1 << 32),
    ] {
        let message = Message::Ephemeral(EphemeralMessage {
            sender_id: "a".into(),
            target_id: "b".into(),
            document_id: DOC.parse().unwrap(),
            data: MessageData::new(vec![0xa0]).unwrap(),
            count: value,
            session_id: "s".into(),
        });
        let frame = message.encode();
        let key = [t("count"), Vec::new()].concat();
        let at = frame
            .windows(key.len())
            .position(|w| w == key)
            .expect("count key")
            + key.len();
        let expected = choices[name]["hex"].as_str().unwrap();
        assert_eq!(
            hex::encode(&frame[at..at + expected.len() / 2]),
            expected,
            "{name}"
        );
    }
}

// ---- properties ----------------------------------------------------------------------------

/// Walks one CBOR item as we encode it and checks cbor-x's rules: maps have 16/32-bit headers,
/// nothing is indefinite, no integer uses the 64-bit head, byte strings are never empty.
fn check_item(bytes: &[u8], at: &mut usize) {
    let initial = bytes[*at];
    *at += 1;
    let (major, info) = (initial >> 5, initial & 0x1f);
    assert_ne!(info, 31, "indefinite length at {}", *at - 1);
    let arg = |at: &mut usize, n: usize| {
        let v = bytes[*at..*at + n]
            .iter()
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        *at += n;
        v
    };
    let value = match info {
        0..=23 => u64::from(info),
        24 => arg(at, 1),
        25 => arg(at, 2),
        26 => arg(at, 4),
        27 => {
            assert_eq!(major, 7, "a 64-bit head is only for float64");
            arg(at, 8)
        }
        _ => panic!("reserved additional info"),
    };
    match major {
        0 | 1 => {}
        2 => {
            assert!(value > 0, "empty byte string");
            *at += value as usize;
        }
        3 => *at += value as usize,
        4 => (0..value).for_each(|_| check_item(bytes, at)),
        5 => {
            assert!(info == 25 || info == 26, "map header is not map16/map32");
            (0..value * 2).for_each(|_| check_item(bytes, at));
        }
        7 => assert!(matches!(info, 20..=23 | 27), "simple value {info}"),
        _ => panic!("major type {major} is never written"),
    }
}

fn arb_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_-]{1,30}"
}

fn arb_peer() -> impl Strategy<Value = PeerId> {
    arb_text().prop_map(PeerId::from)
}

fn arb_doc() -> impl Strategy<Value = DocumentId> {
    prop_oneof![
        4 => any::<[u8; 16]>().prop_map(|b| DocumentId::from_bytes(&b)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| DocumentId::from_bytes(&b)),
    ]
}

fn arb_data() -> impl Strategy<Value = MessageData> {
    prop::collection::vec(any::<u8>(), 1..300).prop_map(|b| MessageData::new(b).unwrap())
}

fn arb_storage_id() -> impl Strategy<Value = StorageId> {
    any::<[u8; 16]>()
        .prop_map(|b| StorageId::from(uuid::Builder::from_random_bytes(b).into_uuid().to_string()))
}

fn arb_metadata() -> impl Strategy<Value = PeerMetadata> {
    (prop::option::of(arb_storage_id()), any::<bool>()).prop_map(|(storage_id, is_ephemeral)| {
        PeerMetadata {
            storage_id,
            is_ephemeral,
        }
    })
}

/// JS numbers are exact up to 2^53; larger values never occur on the wire.
fn arb_js_uint() -> impl Strategy<Value = u64> {
    prop_oneof![0..=(1u64 << 32), (1u64 << 32)..=(1u64 << 53)]
}

fn arb_sync() -> impl Strategy<Value = SyncMessage> {
    (arb_peer(), arb_peer(), arb_doc(), arb_data()).prop_map(
        |(sender_id, target_id, document_id, data)| SyncMessage {
            sender_id,
            target_id,
            document_id,
            data,
        },
    )
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            arb_peer(),
            arb_metadata(),
            prop::option::of(prop::collection::vec(arb_text(), 0..3))
        )
            .prop_map(|(sender_id, peer_metadata, supported_protocol_versions)| {
                Message::Join(JoinMessage {
                    sender_id,
                    peer_metadata,
                    supported_protocol_versions,
                })
            }),
        (arb_peer(), arb_metadata(), arb_text(), arb_peer()).prop_map(
            |(sender_id, peer_metadata, selected_protocol_version, target_id)| Message::Peer(
                PeerMessage {
                    sender_id,
                    peer_metadata,
                    selected_protocol_version,
                    target_id
                }
            )
        ),
        (arb_peer(), ".{0,40}", arb_peer()).prop_map(|(sender_id, message, target_id)| {
            Message::Error(ErrorMessage {
                sender_id,
                message,
                target_id,
            })
        }),
        arb_sync().prop_map(Message::Sync),
        arb_sync().prop_map(Message::Request),
        (arb_peer(), arb_peer(), arb_doc()).prop_map(|(sender_id, target_id, document_id)| {
            Message::DocUnavailable(DocUnavailableMessage {
                sender_id,
                target_id,
                document_id,
            })
        }),
        (
            arb_peer(),
            arb_peer(),
            arb_doc(),
            arb_data(),
            arb_js_uint(),
            arb_text()
        )
            .prop_map(
                |(sender_id, target_id, document_id, data, count, session)| Message::Ephemeral(
                    EphemeralMessage {
                        sender_id,
                        target_id,
                        document_id,
                        data,
                        count,
                        session_id: session.into()
                    }
                )
            ),
        (
            arb_peer(),
            arb_peer(),
            prop::option::of(prop::collection::vec(arb_storage_id(), 0..4)),
            prop::option::of(prop::collection::vec(arb_storage_id(), 0..4))
        )
            .prop_map(|(sender_id, target_id, add, remove)| {
                Message::RemoteSubscriptionChange(RemoteSubscriptionChangeMessage {
                    sender_id,
                    target_id,
                    add,
                    remove,
                })
            }),
        (
            arb_peer(),
            arb_peer(),
            arb_doc(),
            prop::collection::vec(
                (
                    arb_storage_id(),
                    prop::collection::vec(any::<[u8; 32]>(), 0..3),
                    arb_js_uint()
                ),
                0..3
            )
        )
            .prop_map(|(sender_id, target_id, document_id, entries)| {
                let new_heads = entries
                    .into_iter()
                    .map(|(storage, heads, timestamp)| {
                        let heads = heads
                            .into_iter()
                            .map(|h| UrlHead::from(ChangeHash(h)))
                            .collect();
                        (storage, RemoteHeads { heads, timestamp })
                    })
                    .collect();
                Message::RemoteHeadsChanged(RemoteHeadsChangedMessage {
                    sender_id,
                    target_id,
                    document_id,
                    new_heads,
                })
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_variant_round_trips(message in arb_message()) {
        let frame = message.encode();
        let mut at = 0;
        check_item(&frame, &mut at);
        prop_assert_eq!(at, frame.len());
        prop_assert_eq!(Message::decode(&frame).expect("our own frame decodes"), message);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(message in arb_message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut frame = message.encode();
        for (index, byte) in flips {
            let i = index.index(frame.len());
            frame[i] = byte;
        }
        let _ = Message::decode(&frame);
    }

    #[test]
    fn truncated_frames_are_errors(message in arb_message(), cut in any::<prop::sample::Index>()) {
        let frame = message.encode();
        let len = cut.index(frame.len());
        prop_assert!(Message::decode(&frame[..len]).is_err());
    }
}
