//! Where a key lives: automerge-repo's NodeFS layout (docs/protocol.md#nodefs-layout), and its
//! inverse.
//!
//! `[k0, k1, …, kn]` → `k0[0..2] / k0[2..] / k1 / … / kn`. Base58 document ids, the fixed words
//! of the repo (`snapshot`, `incremental`, `sync-state`, `storage-adapter-id`), hex hashes and
//! UUIDs all map to exactly the paths NodeFS uses.
//!
//! Parts that cannot be mapped safely are **refused**, not escaped: an escaped key would land at
//! a path NodeFS does not expect, silently splitting one store into two views. Refused are empty
//! parts, parts with `/`, `\` or NUL, parts over 255 bytes, any part (or either half of `k0`)
//! equal to `.` or `..` (they would leave the directory), and a `k0` shorter than three
//! characters: NodeFS maps `["ab", "x"]` and `["abx"]` to the same file, so such keys cannot be
//! told apart once written. Keys like that (`["a"]`, `["ab"]`) written by JS are still read.

use std::path::{Path, PathBuf};

use tandem_core::StorageKey;

/// The directory under the base where writes stage their temporary files. It is outside every
/// key's path (a key's first component always has two characters), so no range ever lists it.
pub(crate) const STAGING_DIR: &str = ".tandem-tmp";

const MAX_PART_BYTES: usize = 255;

/// The path components of `key`, or why it cannot be stored.
pub(crate) fn key_components(key: &StorageKey) -> Result<Vec<String>, String> {
    let parts = key.parts();
    let Some(first) = parts.first() else {
        return Err("the empty key names no file".into());
    };
    if first.chars().count() < 3 {
        return Err(format!(
            "first part {first:?} is shorter than three characters; NodeFS's layout cannot tell such keys apart"
        ));
    }
    let (head, tail) =
        split_first_part(first).ok_or_else(|| format!("first part {first:?} cannot be split"))?;
    let mut components = vec![head.to_owned(), tail.to_owned()];
    components.extend(parts[1..].iter().cloned());
    for component in &components {
        check_component(component)?;
    }
    Ok(components)
}

/// The components a prefix selects, for range operations. Unlike a key, a prefix may be empty
/// (everything) or have a short first part (see [`PrefixPath`]).
pub(crate) fn prefix_path(prefix: &StorageKey) -> Result<PrefixPath, String> {
    let parts = prefix.parts();
    match parts.first() {
        None => Ok(PrefixPath::Everything),
        Some(first) if first.chars().count() < 3 => {
            check_component(first)?;
            if parts.len() == 1 {
                Ok(PrefixPath::ShortTopLevelFile(first.clone()))
            } else {
                // We never write such keys, and JS ones cannot be read back as such: nothing.
                Ok(PrefixPath::Nothing)
            }
        }
        Some(_) => key_components(prefix).map(PrefixPath::Components),
    }
}

/// What a range prefix covers on disk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PrefixPath {
    /// The empty prefix: every key.
    Everything,
    /// A one-part prefix of one or two characters: only a top-level file of that name (a key JS
    /// wrote, like `["a"]`) is exactly that key; a directory of that name holds longer first parts.
    ShortTopLevelFile(String),
    /// A prefix that cannot match any key.
    Nothing,
    /// The file or directory at these components.
    Components(Vec<String>),
}

fn split_first_part(first: &str) -> Option<(&str, &str)> {
    // NodeFS splits after two UTF-16 code units; for characters in the Basic Multilingual Plane
    // that is two characters. A first character outside it would be split mid-character by JS.
    let mut chars = first.char_indices();
    let (_, c0) = chars.next()?;
    let (i1, c1) = chars.next()?;
    if c0.len_utf16() != 1 || c1.len_utf16() != 1 {
        return None;
    }
    let at = i1 + c1.len_utf8();
    Some((&first[..at], &first[at..]))
}

fn check_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("empty key part".into());
    }
    if component == "." || component == ".." {
        return Err(format!("key part {component:?} would leave its directory"));
    }
    if component.contains(['/', '\\', '\0']) {
        return Err(format!(
            "key part {component:?} contains a path separator or NUL"
        ));
    }
    if component.len() > MAX_PART_BYTES {
        return Err(format!(
            "key part of {} bytes is longer than {MAX_PART_BYTES}",
            component.len()
        ));
    }
    Ok(())
}

/// `base` joined with `components`.
pub(crate) fn join(base: &Path, components: &[String]) -> PathBuf {
    components
        .iter()
        .fold(base.to_path_buf(), |path, c| path.join(c))
}

/// The key stored at `relative` (components below the base), NodeFS's inverse mapping: the first
/// two components join into `k0`; a lone top-level name is a one-part key.
pub(crate) fn key_of_relative(relative: &[String]) -> Option<StorageKey> {
    match relative {
        [] => None,
        [only] => Some(StorageKey::new([only.clone()])),
        [head, tail, rest @ ..] => {
            let mut parts = vec![format!("{head}{tail}")];
            parts.extend(rest.iter().cloned());
            Some(StorageKey::new(parts))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(parts: &[&str]) -> Result<Vec<String>, String> {
        key_components(&StorageKey::new(parts.iter().copied()))
    }

    #[test]
    fn repo_keys_map_to_nodefs_paths() {
        assert_eq!(
            components(&["storage-adapter-id"]).unwrap(),
            ["st", "orage-adapter-id"]
        );
        assert_eq!(
            components(&["2kGRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "deadbeef"]).unwrap(),
            ["2k", "GRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "deadbeef"]
        );
        assert_eq!(
            components(&["myns", "mykey"]).unwrap(),
            ["my", "ns", "mykey"]
        );
        assert_eq!(components(&["abc"]).unwrap(), ["ab", "c"]);
    }

    #[test]
    fn unsafe_keys_are_refused() {
        for bad in [
            &["ab"][..],
            &["a"],
            &["abc", ""],
            &["abc", ".."],
            &["abc", "."],
            &["ab..", "x"],
            &["..x", "y"],
            &["abc", "x/y"],
            &["abc", "x\\y"],
            &["abc", "x\0"],
            &["a/bc"],
        ] {
            assert!(components(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(components(&["abc", &"x".repeat(256)]).is_err());
        assert!(components(&["abc", &"x".repeat(255)]).is_ok());
        assert!(
            components(&["😀bc"]).is_err(),
            "JS would split the surrogate pair"
        );
        assert_eq!(components(&["éèx"]).unwrap(), ["éè", "x"]);
    }

    #[test]
    fn inverse_mapping_rebuilds_keys() {
        let key = StorageKey::new(["2kGRUrX8w2KjaHC3xek1kijSVeee", "snapshot", "deadbeef"]);
        assert_eq!(key_of_relative(&key_components(&key).unwrap()), Some(key));
        assert_eq!(key_of_relative(&["a".into()]), Some(StorageKey::new(["a"])));
        assert_eq!(
            key_of_relative(&["ab".into(), "c".into()]),
            Some(StorageKey::new(["abc"]))
        );
    }

    #[test]
    fn prefixes_of_every_length() {
        let p = |parts: &[&str]| prefix_path(&StorageKey::new(parts.iter().copied()));
        assert_eq!(p(&[]), Ok(PrefixPath::Everything));
        assert_eq!(p(&["a"]), Ok(PrefixPath::ShortTopLevelFile("a".into())));
        assert_eq!(p(&["ab"]), Ok(PrefixPath::ShortTopLevelFile("ab".into())));
        assert_eq!(p(&["ab", "x"]), Ok(PrefixPath::Nothing));
        assert_eq!(
            p(&["abc"]),
            Ok(PrefixPath::Components(vec!["ab".into(), "c".into()]))
        );
        assert!(p(&[".."]).is_err());
    }
}
