//! The presence messages automerge-repo's `Presence` sends as ephemeral messages: a CBOR map
//! with one key, `__presence`, holding `{type: "snapshot", state}`, `{type: "update", channel,
//! value}`, `{type: "heartbeat"}` or `{type: "goodbye"}`.

use serde_json::{json, Map, Value};

/// The key that marks an ephemeral message as a presence message.
pub const PRESENCE_MARKER: &str = "__presence";

/// One presence message.
#[derive(Debug, Clone, PartialEq)]
pub enum PresenceMessage {
    /// The sender's whole state.
    Snapshot(Map<String, Value>),
    /// One channel of the sender's state.
    Update {
        /// The channel.
        channel: String,
        /// Its new value.
        value: Value,
    },
    /// The sender is still here.
    Heartbeat,
    /// The sender leaves.
    Goodbye,
}

/// Why an ephemeral message marked as presence could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PresenceMessageError {
    /// Not CBOR that reads as a JSON-like value.
    #[error("not a JSON-like CBOR value: {0}")]
    NotJson(String),
    /// The presence part is not one of the four message types.
    #[error("not a presence message: {0}")]
    Malformed(String),
}

impl PresenceMessage {
    /// Reads an ephemeral message's CBOR: `None` if it is not a presence message at all.
    ///
    /// ```
    /// use tandem_core::presence::PresenceMessage;
    /// let bytes = PresenceMessage::Heartbeat.encode();
    /// assert_eq!(PresenceMessage::decode(&bytes), Some(Ok(PresenceMessage::Heartbeat)));
    /// ```
    pub fn decode(cbor: &[u8]) -> Option<Result<Self, PresenceMessageError>> {
        let value: Value = match ciborium::from_reader(cbor) {
            Ok(value) => value,
            // Any CBOR value may travel as an ephemeral message; only maps can be presence.
            Err(error) => {
                let marked = ciborium::from_reader::<ciborium::Value, _>(cbor)
                    .ok()?
                    .as_map()?
                    .iter()
                    .any(|(key, _)| key.as_text() == Some(PRESENCE_MARKER));
                return marked.then(|| Err(PresenceMessageError::NotJson(error.to_string())));
            }
        };
        let message = value.as_object()?.get(PRESENCE_MARKER)?;
        Some(Self::from_json(message))
    }

    fn from_json(message: &Value) -> Result<Self, PresenceMessageError> {
        let malformed = || PresenceMessageError::Malformed(message.to_string());
        let object = message.as_object().ok_or_else(malformed)?;
        match object.get("type").and_then(Value::as_str) {
            Some("heartbeat") => Ok(PresenceMessage::Heartbeat),
            Some("goodbye") => Ok(PresenceMessage::Goodbye),
            Some("snapshot") => match object.get("state") {
                Some(Value::Object(state)) => Ok(PresenceMessage::Snapshot(state.clone())),
                _ => Err(malformed()),
            },
            Some("update") => {
                let channel = object.get("channel").and_then(Value::as_str);
                match (channel, object.get("value")) {
                    (Some(channel), Some(value)) => Ok(PresenceMessage::Update {
                        channel: channel.to_owned(),
                        value: value.clone(),
                    }),
                    _ => Err(malformed()),
                }
            }
            _ => Err(malformed()),
        }
    }

    /// The CBOR to broadcast.
    pub fn encode(&self) -> Vec<u8> {
        let inner = match self {
            PresenceMessage::Snapshot(state) => json!({"type": "snapshot", "state": state}),
            PresenceMessage::Update { channel, value } => {
                json!({"type": "update", "channel": channel, "value": value})
            }
            PresenceMessage::Heartbeat => json!({"type": "heartbeat"}),
            PresenceMessage::Goodbye => json!({"type": "goodbye"}),
        };
        let mut bytes = Vec::new();
        // Writing a JSON value into a Vec cannot fail.
        let _ = ciborium::into_writer(&json!({ PRESENCE_MARKER: inner }), &mut bytes);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reads_back_as_written() {
        let state = json!({"name": "ada", "cursor": {"line": 3, "column": 1.5}});
        let Value::Object(state) = state else {
            unreachable!()
        };
        for message in [
            PresenceMessage::Snapshot(state),
            PresenceMessage::Update {
                channel: "cursor".into(),
                value: json!([1, "two", null, true]),
            },
            PresenceMessage::Heartbeat,
            PresenceMessage::Goodbye,
        ] {
            assert_eq!(
                PresenceMessage::decode(&message.encode()),
                Some(Ok(message))
            );
        }
    }

    #[test]
    fn other_ephemeral_messages_are_not_presence_and_broken_presence_is_an_error() {
        let mut other = Vec::new();
        ciborium::into_writer(&json!({"from": "js"}), &mut other).unwrap();
        assert_eq!(PresenceMessage::decode(&other), None);
        let mut number = Vec::new();
        ciborium::into_writer(&42, &mut number).unwrap();
        assert_eq!(PresenceMessage::decode(&number), None);
        assert_eq!(PresenceMessage::decode(&[0xff, 0x00]), None);
        let mut unknown = Vec::new();
        ciborium::into_writer(&json!({PRESENCE_MARKER: {"type": "dance"}}), &mut unknown).unwrap();
        assert!(matches!(
            PresenceMessage::decode(&unknown),
            Some(Err(PresenceMessageError::Malformed(_)))
        ));
        // Bytes do not read as JSON: still recognised as (broken) presence.
        let bytes = ciborium::Value::Map(vec![(
            ciborium::Value::Text(PRESENCE_MARKER.into()),
            ciborium::Value::Bytes(vec![1, 2]),
        )]);
        let mut encoded = Vec::new();
        ciborium::into_writer(&bytes, &mut encoded).unwrap();
        assert!(matches!(
            PresenceMessage::decode(&encoded),
            Some(Err(PresenceMessageError::NotJson(_)))
        ));
    }
}
