//! Bitcoin-style Base58Check with no version byte, as automerge-repo uses for document ids and
//! URL heads (docs/protocol.md#base58check).
//!
//! The payload may have any length, including zero: that is what the JS validators accept.

/// Encodes `payload` followed by the first four bytes of its double SHA-256.
pub(crate) fn encode(payload: &[u8]) -> String {
    bs58::encode(payload).with_check().into_string()
}

/// Decodes a Base58Check string and verifies its checksum, returning the payload.
///
/// Returns `None` for characters outside the Bitcoin alphabet, fewer than four decoded bytes, or a
/// checksum mismatch — the three ways `bs58check.decode` throws in JS.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    bs58::decode(text).with_check(None).into_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_payload_round_trips() {
        assert_eq!(encode(&[]), "3QJmnh");
        assert_eq!(decode("3QJmnh"), Some(vec![]));
    }

    #[test]
    fn rejects_bad_checksum_and_alphabet() {
        assert_eq!(decode("3QJmni"), None);
        assert_eq!(decode("0OIl"), None);
        assert_eq!(decode(""), None);
    }
}
