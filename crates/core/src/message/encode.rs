//! The encoder: cbor-x's choices for the message shapes of automerge-repo
//! (docs/protocol.md#cbor-encoding).
//!
//! ciborium writes minimal map headers and narrows floats, so it cannot reproduce JS frames; the
//! shapes here are few enough that writing the bytes directly is the simplest exact answer.

use super::{Message, PeerMetadata, RemoteHeads};
use crate::StorageId;

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const UNDEFINED: u8 = 0xf7;
const FLOAT64: u8 = 0xfb;

pub(super) fn encode(message: &Message) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(128));
    match message {
        Message::Join(m) => {
            let versions = m.supported_protocol_versions.as_ref();
            w.map(3 + usize::from(versions.is_some()));
            w.entry_text("type", "join");
            w.entry_text("senderId", m.sender_id.as_str());
            w.key("peerMetadata");
            w.peer_metadata(&m.peer_metadata);
            if let Some(versions) = versions {
                w.key("supportedProtocolVersions");
                w.array(versions.len());
                versions.iter().for_each(|v| w.text(v));
            }
        }
        Message::Peer(m) => {
            w.map(5);
            w.entry_text("type", "peer");
            w.entry_text("senderId", m.sender_id.as_str());
            w.key("peerMetadata");
            w.peer_metadata(&m.peer_metadata);
            w.entry_text("selectedProtocolVersion", &m.selected_protocol_version);
            w.entry_text("targetId", m.target_id.as_str());
        }
        Message::Error(m) => {
            w.map(4);
            w.entry_text("type", "error");
            w.entry_text("senderId", m.sender_id.as_str());
            w.entry_text("message", &m.message);
            w.entry_text("targetId", m.target_id.as_str());
        }
        Message::Sync(m) => {
            w.map(5);
            w.entry_text("type", "sync");
            w.entry_text("targetId", m.target_id.as_str());
            w.key("data");
            w.bytes(m.data.as_bytes());
            w.entry_text("documentId", m.document_id.as_str());
            w.entry_text("senderId", m.sender_id.as_str());
        }
        Message::Request(m) => {
            w.map(5);
            w.entry_text("type", "request");
            w.entry_text("targetId", m.target_id.as_str());
            w.entry_text("documentId", m.document_id.as_str());
            w.key("data");
            w.bytes(m.data.as_bytes());
            w.entry_text("senderId", m.sender_id.as_str());
        }
        Message::DocUnavailable(m) => {
            w.map(4);
            w.entry_text("type", "doc-unavailable");
            w.entry_text("documentId", m.document_id.as_str());
            w.entry_text("targetId", m.target_id.as_str());
            w.entry_text("senderId", m.sender_id.as_str());
        }
        Message::Ephemeral(m) => {
            w.map(7);
            w.entry_text("type", "ephemeral");
            w.entry_text("targetId", m.target_id.as_str());
            w.entry_text("documentId", m.document_id.as_str());
            w.key("data");
            w.bytes(m.data.as_bytes());
            w.key("count");
            w.number(m.count);
            w.entry_text("sessionId", m.session_id.as_str());
            w.entry_text("senderId", m.sender_id.as_str());
        }
        Message::RemoteSubscriptionChange(m) => {
            w.map(5);
            w.entry_text("type", "remote-subscription-change");
            w.entry_text("targetId", m.target_id.as_str());
            w.key("add");
            w.storage_ids(m.add.as_deref());
            w.key("remove");
            w.storage_ids(m.remove.as_deref());
            w.entry_text("senderId", m.sender_id.as_str());
        }
        Message::RemoteHeadsChanged(m) => {
            w.map(5);
            w.entry_text("type", "remote-heads-changed");
            w.entry_text("targetId", m.target_id.as_str());
            w.entry_text("documentId", m.document_id.as_str());
            w.key("newHeads");
            w.map(m.new_heads.len());
            for (storage_id, remote) in &m.new_heads {
                w.key(storage_id.as_str());
                w.remote_heads(remote);
            }
            w.entry_text("senderId", m.sender_id.as_str());
        }
    }
    w.0
}

struct Writer(Vec<u8>);

impl Writer {
    /// A definite-length head with the shortest argument.
    fn head(&mut self, major: u8, value: u64) {
        let major = major << 5;
        match value {
            0..=23 => self.0.push(major | value as u8),
            24..=0xff => self.0.extend_from_slice(&[major | 24, value as u8]),
            0x100..=0xffff => {
                self.0.push(major | 25);
                self.0.extend_from_slice(&(value as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(major | 26);
                self.0.extend_from_slice(&(value as u32).to_be_bytes());
            }
            _ => {
                self.0.push(major | 27);
                self.0.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    /// cbor-x writes every object with a 16-bit length (32-bit past 65535 entries).
    fn map(&mut self, len: usize) {
        match u16::try_from(len) {
            Ok(len) => {
                self.0.push(0xb9);
                self.0.extend_from_slice(&len.to_be_bytes());
            }
            Err(_) => {
                self.0.push(0xba);
                self.0.extend_from_slice(&(len as u32).to_be_bytes());
            }
        }
    }

    fn array(&mut self, len: usize) {
        self.head(MAJOR_ARRAY, len as u64);
    }

    fn text(&mut self, text: &str) {
        self.head(MAJOR_TEXT, text.len() as u64);
        self.0.extend_from_slice(text.as_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.head(MAJOR_BYTES, bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    /// A JS number: integers below 2^32 as minimal unsigned heads, larger ones as float64, so a
    /// JS receiver never sees a BigInt. (Beyond 2^53 precision is lost, as in JS itself.)
    fn number(&mut self, value: u64) {
        if value <= u64::from(u32::MAX) {
            self.head(MAJOR_UNSIGNED, value);
        } else {
            self.float64(value as f64);
        }
    }

    fn float64(&mut self, value: f64) {
        self.0.push(FLOAT64);
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn bool(&mut self, value: bool) {
        self.0.push(if value { TRUE } else { FALSE });
    }

    fn undefined(&mut self) {
        self.0.push(UNDEFINED);
    }

    fn key(&mut self, key: &str) {
        self.text(key);
    }

    fn entry_text(&mut self, key: &str, value: &str) {
        self.text(key);
        self.text(value);
    }

    fn peer_metadata(&mut self, metadata: &PeerMetadata) {
        self.map(2);
        self.key("storageId");
        match &metadata.storage_id {
            Some(id) => self.text(id.as_str()),
            None => self.undefined(),
        }
        self.key("isEphemeral");
        self.bool(metadata.is_ephemeral);
    }

    fn storage_ids(&mut self, ids: Option<&[StorageId]>) {
        match ids {
            Some(ids) => {
                self.array(ids.len());
                ids.iter().for_each(|id| self.text(id.as_str()));
            }
            None => self.undefined(),
        }
    }

    fn remote_heads(&mut self, remote: &RemoteHeads) {
        self.map(2);
        self.key("heads");
        self.array(remote.heads.len());
        remote
            .heads
            .iter()
            .for_each(|head| self.text(&head.to_string()));
        self.key("timestamp");
        // Always float64: a timestamp is a JS `Date.now()`, which cbor-x writes as a double
        // (every real one is past 2^32), and a receiver must never see an integer head change type.
        self.float64(remote.timestamp as f64);
    }
}
