//! Every frame the JS packages put on the wire decodes into the right message with the right field
//! values, and every frame a JS repo produced re-encodes to the very same bytes.

use crate::common::{fixture, hex_of, normalize_captured, normalize_ours, to_js_json};
use serde_json::Value;
use tandem_core::{DecodeError, Message};

/// Frames written by hand in the capture scripts' raw clients, not by a JS repo. They must decode
/// to the same fields, but their key order and omitted keys are not cbor-x's, so their bytes
/// differ from ours: joins from `raw-*` peers and the spoofed-sender probe from `someone-else`.
fn hand_made(message: &Message) -> bool {
    let sender = message.sender_id().as_str();
    sender.starts_with("raw-") || sender == "someone-else"
}

fn check_frame(context: &str, frame: &Value) -> Option<Message> {
    let bytes = hex_of(&frame["hex"]);
    let captured = &frame["decoded"];
    if !captured.is_object() {
        return None;
    }
    let message =
        Message::decode(&bytes).unwrap_or_else(|e| panic!("{context}: decode failed: {e}"));
    assert_eq!(
        normalize_ours(&to_js_json(&message)),
        normalize_captured(captured),
        "{context}: fields differ from what JS decoded"
    );
    // JS writes a storage-less peer's metadata two ways: `storageId: undefined` on a first join,
    // no `storageId` key on a reconnect's join. Both mean "no storage id" and decode alike; our
    // encoder always writes the first form.
    let storage_id_key_omitted = captured["peerMetadata"]
        .as_object()
        .is_some_and(|m| !m.contains_key("storageId"));
    if !hand_made(&message) && !storage_id_key_omitted {
        assert_eq!(
            hex::encode(message.encode()),
            hex::encode(&bytes),
            "{context}: re-encoding is not byte-identical"
        );
    }
    let again = Message::decode(&message.encode()).expect("our encoding decodes");
    assert_eq!(again, message, "{context}: decode(encode(m)) != m");
    Some(message)
}

#[test]
fn message_examples_decode_and_reencode_identically() {
    let examples = fixture("messages_examples.json");
    let mut kinds = std::collections::BTreeSet::new();
    for example in examples["examples"].as_array().expect("examples") {
        let label = example["label"].as_str().expect("label");
        let message = check_frame(label, example).expect("every example is a decodable map");
        kinds.insert(message.type_name());
    }
    assert_eq!(kinds.len(), 9, "every message kind is exercised: {kinds:?}");
}

fn check_capture(name: &str) {
    let capture = fixture(name);
    let mut decoded = 0;
    let mut refused = 0;
    for (i, frame) in capture["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .enumerate()
    {
        if frame["wsOpcode"] != "binary" {
            continue;
        }
        let context = format!("{name} frame {i} (t={})", frame["t"]);
        if check_frame(&context, frame).is_some() {
            decoded += 1;
        } else {
            // JS could not decode it either (the invalid-CBOR probe): we must refuse it too.
            assert!(
                Message::decode(&hex_of(&frame["hex"])).is_err(),
                "{context}: JS refused this frame"
            );
            refused += 1;
        }
    }
    assert!(decoded >= 40, "{name}: only {decoded} frames decoded");
    assert_eq!(
        refused, 1,
        "{name}: the capture has exactly one garbage frame"
    );
}

#[test]
fn wire_capture_frames_decode() {
    check_capture("wire_capture.json");
}

#[test]
fn generous_server_capture_frames_decode() {
    check_capture("wire_capture_generous_server.json");
}

#[test]
fn garbage_frame_is_malformed_cbor() {
    assert!(matches!(
        Message::decode(&[0xff, 0xff, 0x1c]),
        Err(DecodeError::MalformedCbor(_))
    ));
}
