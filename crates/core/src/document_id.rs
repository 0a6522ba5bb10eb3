//! [`DocumentId`]: the identity of a document on the wire, in storage keys and in URLs.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::base58check;

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDocumentId {
    /// The text is not Base58Check (bad character, too short, or wrong checksum).
    #[error("not a Base58Check document id: {0:?}")]
    NotBase58Check(String),
    /// The text is neither an automerge URL, a document id, nor a legacy UUID.
    #[error("Invalid AutomergeUrl: '{0}'")]
    Uninterpretable(String),
}

/// A document's id: bytes (16 random bytes for ids we create) shown as Base58Check text.
///
/// Parsing accepts exactly what automerge-repo's `isValidDocumentId` accepts: any Base58Check
/// string, whatever the payload length (docs/protocol.md#document-ids). Cloning is cheap; the text
/// form is computed once.
///
/// ```
/// use tandem_core::DocumentId;
/// let id: DocumentId = "2kGRUrX8w2KjaHC3xek1kijSVeee".parse().unwrap();
/// assert_eq!(hex::encode(id.as_bytes()), "7d52c1a6f3b34b0e9a1f2a3b4c5d6e7f");
/// assert_eq!(id.to_string(), "2kGRUrX8w2KjaHC3xek1kijSVeee");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId(Arc<Inner>);

// Field order matters for the derived ordering: ids order by their bytes.
#[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Inner {
    bytes: Box<[u8]>,
    text: Box<str>,
}

impl DocumentId {
    /// A new random id: the 16 bytes of a version-4 UUID, as `repo.create()` makes them.
    pub fn random() -> Self {
        Self::from_bytes(uuid::Uuid::new_v4().as_bytes())
    }

    /// A version-4 id from caller-supplied randomness (for deterministic simulations): the
    /// version and variant bits are set as a UUID v4 requires.
    pub fn from_random_bytes(random: [u8; 16]) -> Self {
        Self::from_bytes(
            uuid::Builder::from_random_bytes(random)
                .as_uuid()
                .as_bytes(),
        )
    }

    /// The id whose binary form is `bytes` (any length, as automerge-repo allows).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        DocumentId(Arc::new(Inner {
            text: base58check::encode(bytes).into_boxed_str(),
            bytes: bytes.into(),
        }))
    }

    /// The id a legacy UUID string stands for, if `text` is one (`isValidUuid` of uuid@9:
    /// hyphenated, version 1–5, RFC variant, or the nil UUID; either case).
    pub fn from_legacy_uuid(text: &str) -> Option<Self> {
        is_js_valid_uuid(text)
            .then(|| uuid::Uuid::parse_str(text).ok())
            .flatten()
            .map(|uuid| Self::from_bytes(uuid.as_bytes()))
    }

    /// Reads what a user may hand to `find`: an automerge URL (its heads are ignored here), a
    /// document id, or a legacy UUID — the order and rules of JS `interpretAsDocumentId`.
    pub fn interpret(text: &str) -> Result<Self, InvalidDocumentId> {
        if let Ok(url) = text.parse::<crate::AutomergeUrl>() {
            return Ok(url.document_id().clone());
        }
        if let Ok(id) = text.parse() {
            return Ok(id);
        }
        Self::from_legacy_uuid(text).ok_or_else(|| InvalidDocumentId::Uninterpretable(text.into()))
    }

    /// The binary form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The Base58Check text form, as used on the wire and in storage keys.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The `automerge:` URL of this document, with no heads.
    pub fn url(&self) -> crate::AutomergeUrl {
        crate::AutomergeUrl::new(self.clone())
    }
}

/// uuid@9's `validate`: `^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|0{8}-0{4}-0{4}-0{4}-0{12})$/i`.
fn is_js_valid_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return false;
    }
    if text == "00000000-0000-0000-0000-000000000000" {
        return true;
    }
    let shape_ok = bytes.iter().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => *b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    shape_ok
        && (b'1'..=b'5').contains(&bytes[14])
        && matches!(bytes[19].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b')
}

impl FromStr for DocumentId {
    type Err = InvalidDocumentId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = base58check::decode(text)
            .ok_or_else(|| InvalidDocumentId::NotBase58Check(text.into()))?;
        Ok(DocumentId(Arc::new(Inner {
            bytes: bytes.into(),
            text: text.into(),
        })))
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({})", self.as_str())
    }
}

impl AsRef<str> for DocumentId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_uuid_v4_and_round_trip() {
        let id = DocumentId::random();
        assert_eq!(id.as_bytes().len(), 16);
        assert_eq!(id.as_bytes()[6] >> 4, 4);
        assert_eq!(id.as_bytes()[8] >> 6, 0b10);
        assert_eq!(id.to_string().parse::<DocumentId>().unwrap(), id);
    }

    #[test]
    fn from_random_bytes_sets_version_bits() {
        let id = DocumentId::from_random_bytes([0xff; 16]);
        assert_eq!(id.as_bytes()[6], 0x4f);
        assert_eq!(id.as_bytes()[8], 0xbf);
    }

    #[test]
    fn legacy_uuid_rules_follow_uuid_at_9() {
        assert!(is_js_valid_uuid("7d52c1a6-f3b3-4b0e-9a1f-2a3b4c5d6e7f"));
        assert!(is_js_valid_uuid("7D52C1A6-F3B3-4B0E-9A1F-2A3B4C5D6E7F"));
        assert!(is_js_valid_uuid("00000000-0000-0000-0000-000000000000"));
        assert!(!is_js_valid_uuid("7d52c1a6f3b34b0e9a1f2a3b4c5d6e7f"));
        assert!(
            !is_js_valid_uuid("7d52c1a6-f3b3-6b0e-9a1f-2a3b4c5d6e7f"),
            "version 6"
        );
        assert!(
            !is_js_valid_uuid("7d52c1a6-f3b3-4b0e-7a1f-2a3b4c5d6e7f"),
            "variant"
        );
        assert!(!is_js_valid_uuid("{7d52c1a6-f3b3-4b0e-9a1f-2a3b4c5d6e7f}"));
    }
}
