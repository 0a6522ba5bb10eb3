//! The decoder: any well-formed CBOR a JS peer (or a minimal Rust encoder) may send.
//!
//! It parses into `ciborium::Value` (which reads lengths incrementally, so a hostile length header
//! cannot make it allocate ahead of the bytes that exist), then picks fields by name. Keys may come
//! in any order, duplicates resolve to the last (as in JS), unknown keys are ignored, and CBOR
//! `null` and `undefined` both mean "absent".

use ciborium::Value;

use super::*;

/// Why a frame is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not one well-formed CBOR data item.
    #[error("malformed CBOR: {0}")]
    MalformedCbor(String),
    /// A CBOR item was read but bytes remain.
    #[error("{0} bytes after the end of the message")]
    TrailingBytes(usize),
    /// The item is not a map (an array, a number, a string…).
    #[error("the frame is not a CBOR map")]
    NotAMap,
    /// The map has no text `type`.
    #[error("the message has no type")]
    MissingType,
    /// A `type` this protocol does not know (including `leave`, gone since 2024).
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A required field is absent, `null` or `undefined`.
    #[error("{message_type} message lacks field {field}")]
    MissingField {
        /// The message's type.
        message_type: &'static str,
        /// The absent key.
        field: &'static str,
    },
    /// A field holds a value of the wrong CBOR type.
    #[error("field {field} of a {message_type} message is not {expected}")]
    WrongType {
        /// The message's type.
        message_type: &'static str,
        /// The offending key.
        field: &'static str,
        /// What the field must hold.
        expected: &'static str,
    },
    /// `documentId` is not Base58Check (a UUID included: JS drops those too).
    #[error("invalid document id {0:?}")]
    InvalidDocumentId(String),
    /// A head in `remote-heads-changed` is not Base58Check.
    #[error("invalid head {0:?}")]
    InvalidHead(String),
}

pub(super) fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
    let mut reader = frame;
    let value: Value = ciborium::de::from_reader(&mut reader)
        .map_err(|e| DecodeError::MalformedCbor(e.to_string()))?;
    if !reader.is_empty() {
        return Err(DecodeError::TrailingBytes(reader.len()));
    }
    let Value::Map(entries) = value else {
        return Err(DecodeError::NotAMap);
    };
    let message_type = match lookup(&entries, "type") {
        Some(Value::Text(t)) => t.as_str(),
        _ => return Err(DecodeError::MissingType),
    };
    let message_type: &'static str = match message_type {
        "join" => "join",
        "peer" => "peer",
        "error" => "error",
        "sync" => "sync",
        "request" => "request",
        "doc-unavailable" => "doc-unavailable",
        "ephemeral" => "ephemeral",
        "remote-subscription-change" => "remote-subscription-change",
        "remote-heads-changed" => "remote-heads-changed",
        other => return Err(DecodeError::UnknownType(other.to_owned())),
    };
    let f = Fields {
        message_type,
        entries: &entries,
    };
    Ok(match message_type {
        "join" => Message::Join(JoinMessage {
            sender_id: f.text("senderId")?.into(),
            peer_metadata: f.peer_metadata("peerMetadata")?,
            supported_protocol_versions: f.opt_texts("supportedProtocolVersions")?,
        }),
        "peer" => Message::Peer(PeerMessage {
            sender_id: f.text("senderId")?.into(),
            peer_metadata: f.peer_metadata("peerMetadata")?,
            selected_protocol_version: f.text("selectedProtocolVersion")?.to_owned(),
            target_id: f.text("targetId")?.into(),
        }),
        "error" => Message::Error(ErrorMessage {
            sender_id: f.text("senderId")?.into(),
            message: f.opt_text("message")?.unwrap_or_default().to_owned(),
            target_id: f.text("targetId")?.into(),
        }),
        "sync" => Message::Sync(f.sync()?),
        "request" => Message::Request(f.sync()?),
        "doc-unavailable" => Message::DocUnavailable(DocUnavailableMessage {
            sender_id: f.text("senderId")?.into(),
            target_id: f.text("targetId")?.into(),
            document_id: f.document_id()?,
        }),
        "ephemeral" => Message::Ephemeral(EphemeralMessage {
            sender_id: f.text("senderId")?.into(),
            target_id: f.text("targetId")?.into(),
            document_id: f.document_id()?,
            data: f.data()?,
            count: f.count("count")?,
            session_id: f.text("sessionId")?.into(),
        }),
        "remote-subscription-change" => {
            Message::RemoteSubscriptionChange(RemoteSubscriptionChangeMessage {
                sender_id: f.text("senderId")?.into(),
                target_id: f.text("targetId")?.into(),
                add: f
                    .opt_texts("add")?
                    .map(|ids| ids.into_iter().map(StorageId::from).collect()),
                remove: f
                    .opt_texts("remove")?
                    .map(|ids| ids.into_iter().map(StorageId::from).collect()),
            })
        }
        _ => Message::RemoteHeadsChanged(RemoteHeadsChangedMessage {
            sender_id: f.text("senderId")?.into(),
            target_id: f.text("targetId")?.into(),
            document_id: f.document_id()?,
            new_heads: f.new_heads()?,
        }),
    })
}

/// The value of the last entry with a text key equal to `key` (last wins, as in JS objects).
fn lookup<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries.iter().rev().find_map(|(k, v)| match k {
        Value::Text(k) if k == key => Some(v),
        _ => None,
    })
}

/// A present value: `null` and `undefined` (which ciborium reads as `Null`) count as absent.
fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

struct Fields<'a> {
    message_type: &'static str,
    entries: &'a [(Value, Value)],
}

impl<'a> Fields<'a> {
    fn get(&self, field: &'static str) -> Option<&'a Value> {
        present(lookup(self.entries, field))
    }

    fn missing(&self, field: &'static str) -> DecodeError {
        DecodeError::MissingField {
            message_type: self.message_type,
            field,
        }
    }

    fn wrong(&self, field: &'static str, expected: &'static str) -> DecodeError {
        DecodeError::WrongType {
            message_type: self.message_type,
            field,
            expected,
        }
    }

    fn opt_text(&self, field: &'static str) -> Result<Option<&'a str>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Text(t)) => Ok(Some(t)),
            Some(_) => Err(self.wrong(field, "text")),
        }
    }

    fn text(&self, field: &'static str) -> Result<&'a str, DecodeError> {
        self.opt_text(field)?.ok_or_else(|| self.missing(field))
    }

    fn opt_texts(&self, field: &'static str) -> Result<Option<Vec<String>>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_text()
                        .map(str::to_owned)
                        .ok_or_else(|| self.wrong(field, "an array of text"))
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(self.wrong(field, "an array of text")),
        }
    }

    fn document_id(&self) -> Result<DocumentId, DecodeError> {
        let text = self.text("documentId")?;
        text.parse()
            .map_err(|_| DecodeError::InvalidDocumentId(text.to_owned()))
    }

    /// A byte string; tag 64 (typed array) and an array of byte values are accepted because the
    /// JS side accepts them.
    fn data(&self) -> Result<MessageData, DecodeError> {
        const FIELD: &str = "data";
        let bytes = match self.get(FIELD).ok_or_else(|| self.missing(FIELD))? {
            Value::Bytes(b) => b.clone(),
            Value::Tag(64, inner) => match inner.as_ref() {
                Value::Bytes(b) => b.clone(),
                _ => return Err(self.wrong(FIELD, "a byte string")),
            },
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_integer().and_then(|i| u8::try_from(i).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| self.wrong(FIELD, "a byte string"))?,
            _ => return Err(self.wrong(FIELD, "a byte string")),
        };
        MessageData::new(bytes).map_err(|_| self.wrong(FIELD, "a non-empty byte string"))
    }

    /// A non-negative whole number, written as an integer or (as JS does past 2^32) a float.
    fn count(&self, field: &'static str) -> Result<u64, DecodeError> {
        let value = self.get(field).ok_or_else(|| self.missing(field))?;
        whole_number(value).ok_or_else(|| self.wrong(field, "a non-negative whole number"))
    }

    fn peer_metadata(&self, field: &'static str) -> Result<PeerMetadata, DecodeError> {
        let entries = match self.get(field) {
            None => return Ok(PeerMetadata::default()),
            Some(Value::Map(entries)) => entries,
            Some(_) => return Err(self.wrong(field, "a map")),
        };
        let storage_id = match present(lookup(entries, "storageId")) {
            None => None,
            Some(Value::Text(t)) => Some(StorageId::from(t.as_str())),
            Some(_) => return Err(self.wrong("storageId", "text")),
        };
        let is_ephemeral = match present(lookup(entries, "isEphemeral")) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(self.wrong("isEphemeral", "a boolean")),
        };
        Ok(PeerMetadata {
            storage_id,
            is_ephemeral,
        })
    }

    fn sync(&self) -> Result<SyncMessage, DecodeError> {
        Ok(SyncMessage {
            sender_id: self.text("senderId")?.into(),
            target_id: self.text("targetId")?.into(),
            document_id: self.document_id()?,
            data: self.data()?,
        })
    }

    fn new_heads(&self) -> Result<Vec<(StorageId, RemoteHeads)>, DecodeError> {
        const FIELD: &str = "newHeads";
        let Value::Map(entries) = self.get(FIELD).ok_or_else(|| self.missing(FIELD))? else {
            return Err(self.wrong(FIELD, "a map"));
        };
        entries
            .iter()
            .map(|(storage_id, remote)| {
                let storage_id = storage_id
                    .as_text()
                    .ok_or_else(|| self.wrong(FIELD, "a map keyed by storage id"))?;
                let Value::Map(remote) = remote else {
                    return Err(self.wrong(FIELD, "a map of {heads, timestamp}"));
                };
                let heads = match present(lookup(remote, "heads")) {
                    Some(Value::Array(heads)) => heads
                        .iter()
                        .map(|head| {
                            let text = head
                                .as_text()
                                .ok_or_else(|| self.wrong("heads", "an array of text"))?;
                            text.parse::<UrlHead>()
                                .map_err(|_| DecodeError::InvalidHead(text.to_owned()))
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(self.wrong("heads", "an array of text")),
                    None => return Err(self.missing("heads")),
                };
                let timestamp = present(lookup(remote, "timestamp"))
                    .ok_or_else(|| self.missing("timestamp"))?;
                let timestamp = timestamp_millis(timestamp)
                    .ok_or_else(|| self.wrong("timestamp", "a timestamp"))?;
                Ok((
                    StorageId::from(storage_id),
                    RemoteHeads { heads, timestamp },
                ))
            })
            .collect()
    }
}

fn whole_number(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        Value::Float(f)
            if f.is_finite()
                && *f >= 0.0
                && f.fract() == 0.0
                && *f < 18_446_744_073_709_551_616.0 =>
        {
            Some(*f as u64)
        }
        _ => None,
    }
}

/// Milliseconds: JS writes `Date.now()` as float64; a fractional part (from a clock with
/// sub-millisecond resolution) is dropped.
fn timestamp_millis(value: &Value) -> Option<u64> {
    match value {
        Value::Float(f) if f.is_finite() && *f >= 0.0 && *f < 18_446_744_073_709_551_616.0 => {
            Some(f.trunc() as u64)
        }
        other => whole_number(other),
    }
}
