//! Helpers shared by the tests (`virtual_clock`: those of the nodes on the virtual clock); for
//! the fixture tests: reading fixtures, and rendering a [`Message`] the way the
//! capture scripts rendered what cbor-x decoded, so the two can be compared field by field.

#![allow(dead_code)]

pub mod virtual_clock;

use serde_json::{json, Map, Value};
use tandem_core::{Message, PeerMetadata, StorageId};

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

pub fn hex_of(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex is a string")).expect("valid hex")
}

fn bytes(data: &[u8]) -> Value {
    json!({ "$bytes": hex::encode(data) })
}

fn metadata(m: &PeerMetadata) -> Value {
    json!({ "storageId": m.storage_id.as_ref().map(|s| s.as_str()), "isEphemeral": m.is_ephemeral })
}

fn storage_ids(ids: &Option<Vec<StorageId>>) -> Value {
    ids.as_ref()
        .map_or(Value::Null, |ids| ids.iter().map(|i| i.as_str()).collect())
}

/// The message as a JSON object keyed like the wire; absent values are `null`.
pub fn to_js_json(message: &Message) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), message.type_name().into());
    o.insert("senderId".into(), message.sender_id().as_str().into());
    if let Some(target) = message.target_id() {
        o.insert("targetId".into(), target.as_str().into());
    }
    if let Some(doc) = message.document_id() {
        o.insert("documentId".into(), doc.as_str().into());
    }
    match message {
        Message::Join(m) => {
            o.insert("peerMetadata".into(), metadata(&m.peer_metadata));
            o.insert(
                "supportedProtocolVersions".into(),
                json!(m.supported_protocol_versions),
            );
        }
        Message::Peer(m) => {
            o.insert("peerMetadata".into(), metadata(&m.peer_metadata));
            o.insert(
                "selectedProtocolVersion".into(),
                m.selected_protocol_version.clone().into(),
            );
        }
        Message::Error(m) => {
            o.insert("message".into(), m.message.clone().into());
        }
        Message::Sync(m) | Message::Request(m) => {
            o.insert("data".into(), bytes(m.data.as_bytes()));
        }
        Message::DocUnavailable(_) => {}
        Message::Ephemeral(m) => {
            o.insert("data".into(), bytes(m.data.as_bytes()));
            o.insert("count".into(), m.count.into());
            o.insert("sessionId".into(), m.session_id.as_str().into());
        }
        Message::RemoteSubscriptionChange(m) => {
            o.insert("add".into(), storage_ids(&m.add));
            o.insert("remove".into(), storage_ids(&m.remove));
        }
        Message::RemoteHeadsChanged(m) => {
            let heads: Map<String, Value> = m
                .new_heads
                .iter()
                .map(|(storage, remote)| {
                    let heads: Vec<String> = remote.heads.iter().map(|h| h.to_string()).collect();
                    (
                        storage.to_string(),
                        json!({ "heads": heads, "timestamp": remote.timestamp }),
                    )
                })
                .collect();
            o.insert("newHeads".into(), Value::Object(heads));
        }
    }
    Value::Object(o)
}

/// The captured `decoded` value in the same normal form: `undefined` → `null`, numbers as f64,
/// and what JS reads as falsy-absent (`isEphemeral` missing from hand-made metadata) filled in.
pub fn normalize_captured(value: &Value) -> Value {
    match value {
        Value::Object(o) if o.get("$undefined") == Some(&Value::Bool(true)) => Value::Null,
        Value::Object(o) if o.contains_key("$bytes") => value.clone(),
        Value::Object(o) => {
            let mut out: Map<String, Value> = o
                .iter()
                .map(|(k, v)| (k.clone(), normalize_captured(v)))
                .collect();
            if let Some(Value::Object(meta)) = out.get_mut("peerMetadata") {
                meta.entry("isEphemeral").or_insert(Value::Bool(false));
                meta.entry("storageId").or_insert(Value::Null);
            }
            if out.get("type") == Some(&json!("join")) {
                out.entry("supportedProtocolVersions")
                    .or_insert(Value::Null);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize_captured).collect()),
        Value::Number(n) => json!(n.as_f64()),
        other => other.clone(),
    }
}

/// Numbers as f64 on our side too, so 1795350210306 compares equal to 1795350210306.0.
pub fn normalize_ours(value: &Value) -> Value {
    match value {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), normalize_ours(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize_ours).collect()),
        Value::Number(n) => json!(n.as_f64()),
        other => other.clone(),
    }
}
