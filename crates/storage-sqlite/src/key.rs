//! Keys as one text each: the parts joined by the unit separator (U+001F), so that the keys
//! under a prefix are one range of the primary key.

use tandem_core::StorageKey;

const SEPARATOR: char = '\u{1f}';
/// The character after [`SEPARATOR`]: keys under a prefix sort below `prefix + NEXT`.
const NEXT: char = '\u{20}';

/// The key as stored; parts may not hold the separator or NUL (no repo key does).
pub(crate) fn encode(key: &StorageKey) -> Result<String, String> {
    for part in key.parts() {
        if part.contains(SEPARATOR) || part.contains('\0') {
            return Err(format!("a key part holds U+001F or NUL: {part:?}"));
        }
    }
    Ok(key.parts().join(&SEPARATOR.to_string()))
}

/// The stored key back.
pub(crate) fn decode(stored: &str) -> StorageKey {
    if stored.is_empty() {
        return StorageKey::new([""; 0]);
    }
    StorageKey::new(stored.split(SEPARATOR))
}

/// What a prefix matches: the key equal to it, and the keys from `from` (inclusive) to `to`
/// (exclusive). The empty prefix matches every key.
pub(crate) fn range(prefix: &StorageKey) -> Result<(String, String, String), String> {
    let exact = encode(prefix)?;
    if prefix.parts().is_empty() {
        // Every key: the empty text and up.
        return Ok((exact, String::new(), char::MAX.to_string()));
    }
    Ok((
        exact.clone(),
        format!("{exact}{SEPARATOR}"),
        format!("{exact}{NEXT}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_a_prefix_matches_whole_parts_only() {
        let key = StorageKey::new(["doc", "snapshot", "00ff"]);
        assert_eq!(decode(&encode(&key).unwrap()), key);
        let (exact, from, to) = range(&StorageKey::new(["doc"])).unwrap();
        let inside = encode(&key).unwrap();
        assert!(inside >= from && inside < to);
        let longer_part = encode(&StorageKey::new(["docx", "snapshot"])).unwrap();
        assert!(longer_part != exact && !(longer_part >= from && longer_part < to));
        assert!(encode(&StorageKey::new(["a\u{1f}b"])).is_err());
    }
}
