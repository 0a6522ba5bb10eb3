//! The conformance suite for [`StorageAdapter`] implementations.
//!
//! Every storage crate runs [`run_all`] in its tests with a factory that returns a fresh, empty
//! store. The suite needs no async runtime of its own: concurrency is expressed with `futures`, so
//! any executor can drive it. Failures panic with a message naming the broken rule.
//!
//! `tandem-storage-mem`'s `tests/conformance.rs` is the model: one `#[tokio::test]` that calls
//! `run_all(MemoryStorage::new)`, and one that proves the suite fails adapters with known bugs.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::{StorageAdapter, StorageKey, StoredDocument};
use crate::DocumentId;

/// Runs every check, each on a fresh store from `fresh`.
pub async fn run_all<A: StorageAdapter>(mut fresh: impl FnMut() -> A) {
    missing_keys(&fresh()).await;
    save_load_overwrite_remove(&fresh()).await;
    empty_value(&fresh()).await;
    large_value(&fresh()).await;
    load_range_on_prefixes_of_every_length(&fresh()).await;
    load_document_reads_chunks_and_tombstone(&fresh()).await;
    prefixes_match_whole_parts(&fresh()).await;
    remove_range_on_prefixes_of_every_length(&mut fresh).await;
    many_keys(&fresh()).await;
    concurrent_saves(&fresh()).await;
}

// Parts look like what the repo writes (Base58 ids, fixed words, hex names), so that stores with
// restrictions on key parts (a file store) can run every check.
const DOC_A: &str = "2kGRUrX8w2KjaHC3xek1kijSVeee";
const DOC_B: &str = "4Qai4FjYBg2E2PKZbaTtiq1xYwwV";

fn key(parts: &[&str]) -> StorageKey {
    StorageKey::new(parts.iter().copied())
}

fn hex_name(i: usize) -> String {
    format!("{i:064x}")
}

async fn sorted_range<A: StorageAdapter>(
    store: &A,
    prefix: &StorageKey,
) -> BTreeMap<StorageKey, Vec<u8>> {
    let found = store
        .load_range(prefix)
        .await
        .unwrap_or_else(|e| panic!("load_range({prefix:?}) failed: {e}"));
    let count = found.len();
    let map: BTreeMap<_, _> = found.into_iter().collect();
    assert_eq!(
        map.len(),
        count,
        "load_range({prefix:?}) returned a key twice"
    );
    map
}

/// The tree the range checks use: two documents, three kinds, and the storage id.
fn sample_tree() -> Vec<(StorageKey, Vec<u8>)> {
    vec![
        (
            key(&[DOC_A, "snapshot", &hex_name(1)]),
            b"snapshot a1".to_vec(),
        ),
        (
            key(&[DOC_A, "snapshot", &hex_name(2)]),
            b"snapshot a2".to_vec(),
        ),
        (
            key(&[DOC_A, "incremental", &hex_name(3)]),
            b"incremental a3".to_vec(),
        ),
        (
            key(&[DOC_A, "sync-state", "7bc8cfe8-790b-465a-9da2-7a9c6319bb54"]),
            vec![0x43, 0x00],
        ),
        (
            key(&[DOC_B, "snapshot", &hex_name(4)]),
            b"snapshot b4".to_vec(),
        ),
        (
            StorageKey::storage_adapter_id(),
            b"5c6c8985-b94a-462a-8d15-7f5558744685".to_vec(),
        ),
    ]
}

async fn save_all<A: StorageAdapter>(store: &A, entries: &[(StorageKey, Vec<u8>)]) {
    for (k, v) in entries {
        store
            .save(k, v.clone())
            .await
            .unwrap_or_else(|e| panic!("save({k:?}) failed: {e}"));
    }
}

fn expected_under(
    entries: &[(StorageKey, Vec<u8>)],
    prefix: &StorageKey,
) -> BTreeMap<StorageKey, Vec<u8>> {
    entries
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .cloned()
        .collect()
}

/// The prefixes the range checks query: every length from 0 to one past the longest key.
fn prefixes() -> Vec<StorageKey> {
    vec![
        key(&[]),
        key(&[DOC_A]),
        key(&[DOC_A, "snapshot"]),
        key(&[DOC_A, "snapshot", &hex_name(1)]),
        key(&[DOC_A, "snapshot", &hex_name(1), "deeper"]),
        key(&[DOC_A, "incremental"]),
        key(&[DOC_A, "no-such-kind"]),
        key(&[DOC_B]),
        key(&["3QJmnh"]),
        StorageKey::storage_adapter_id(),
    ]
}

async fn missing_keys<A: StorageAdapter>(store: &A) {
    let k = key(&[DOC_A, "snapshot", &hex_name(0)]);
    assert_eq!(
        store.load(&k).await.expect("load of a missing key"),
        None,
        "a missing key loads as None"
    );
    store
        .remove(&k)
        .await
        .expect("removing a missing key is not an error");
    assert!(
        sorted_range(store, &key(&[DOC_A])).await.is_empty(),
        "an empty store has an empty range"
    );
    store
        .remove_range(&key(&[DOC_A]))
        .await
        .expect("removing an empty range is not an error");
}

async fn save_load_overwrite_remove<A: StorageAdapter>(store: &A) {
    let k = key(&[DOC_A, "incremental", &hex_name(7)]);
    store.save(&k, b"first".to_vec()).await.expect("save");
    assert_eq!(
        store.load(&k).await.expect("load").as_deref(),
        Some(&b"first"[..]),
        "a saved value loads back"
    );
    store
        .save(&k, b"second, longer".to_vec())
        .await
        .expect("overwrite");
    assert_eq!(
        store.load(&k).await.expect("load").as_deref(),
        Some(&b"second, longer"[..]),
        "save replaces"
    );
    store
        .save(&k, b"3rd".to_vec())
        .await
        .expect("overwrite shorter");
    assert_eq!(
        store.load(&k).await.expect("load").as_deref(),
        Some(&b"3rd"[..]),
        "a shorter value replaces wholly"
    );
    store.remove(&k).await.expect("remove");
    assert_eq!(
        store.load(&k).await.expect("load"),
        None,
        "a removed key is gone"
    );
}

async fn empty_value<A: StorageAdapter>(store: &A) {
    let k = key(&[DOC_A, "sync-state", "empty"]);
    store
        .save(&k, Vec::new())
        .await
        .expect("saving an empty value");
    assert_eq!(
        store.load(&k).await.expect("load"),
        Some(Vec::new()),
        "an empty value is a value, not absence"
    );
    assert_eq!(
        sorted_range(store, &key(&[DOC_A])).await.get(&k),
        Some(&Vec::new()),
        "ranges include empty values"
    );
}

async fn large_value<A: StorageAdapter>(store: &A) {
    let k = key(&[DOC_B, "snapshot", &hex_name(9)]);
    let value: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    store.save(&k, value.clone()).await.expect("saving 8 MiB");
    let loaded = store
        .load(&k)
        .await
        .expect("load")
        .expect("the large value is there");
    assert!(loaded == value, "an 8 MiB value loads back byte for byte");
}

async fn load_range_on_prefixes_of_every_length<A: StorageAdapter>(store: &A) {
    let tree = sample_tree();
    save_all(store, &tree).await;
    for prefix in prefixes() {
        assert_eq!(
            sorted_range(store, &prefix).await,
            expected_under(&tree, &prefix),
            "load_range({prefix:?})"
        );
    }
}

async fn load_document<A: StorageAdapter>(store: &A, id: &str) -> StoredDocument {
    let document_id = id.parse::<DocumentId>().expect("a valid document id");
    let mut stored = store
        .load_document(&document_id)
        .await
        .unwrap_or_else(|e| panic!("load_document({id}) failed: {e}"));
    stored.chunks.sort();
    stored
}

async fn load_document_reads_chunks_and_tombstone<A: StorageAdapter>(store: &A) {
    assert_eq!(
        load_document(store, DOC_A).await,
        StoredDocument::default(),
        "load_document of a document never stored"
    );
    let tree = sample_tree();
    save_all(store, &tree).await;
    let mut chunks: Vec<_> = tree
        .iter()
        .filter(|(k, _)| k.parts()[0] == DOC_A && k.parts()[1] != "sync-state")
        .cloned()
        .collect();
    chunks.sort();
    assert_eq!(
        load_document(store, DOC_A).await,
        StoredDocument {
            deleted: false,
            chunks
        },
        "load_document: the document's snapshots and incrementals, not its sync states or \
         another document's chunks"
    );
    let document_id = DOC_B.parse::<DocumentId>().expect("a valid document id");
    save_all(
        store,
        &[(StorageKey::tombstone(&document_id), b"deleted".to_vec())],
    )
    .await;
    assert_eq!(
        load_document(store, DOC_B).await,
        StoredDocument::deleted(),
        "load_document of a document with a tombstone"
    );
}

async fn prefixes_match_whole_parts<A: StorageAdapter>(store: &A) {
    let short = key(&["doc1", "snapshot", &hex_name(1)]);
    let long = key(&["doc12", "snapshot", &hex_name(2)]);
    save_all(
        store,
        &[
            (short.clone(), b"1".to_vec()),
            (long.clone(), b"12".to_vec()),
        ],
    )
    .await;
    let found = sorted_range(store, &key(&["doc1"])).await;
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        vec![&short],
        "[\"doc1\"] must not cover [\"doc12\", …]"
    );
    store
        .remove_range(&key(&["doc1"]))
        .await
        .expect("remove_range");
    assert_eq!(
        store.load(&long).await.expect("load").as_deref(),
        Some(&b"12"[..]),
        "remove_range([\"doc1\"]) kept doc12"
    );
    assert_eq!(
        store.load(&short).await.expect("load"),
        None,
        "remove_range([\"doc1\"]) removed doc1"
    );
}

async fn remove_range_on_prefixes_of_every_length<A: StorageAdapter>(
    fresh: &mut impl FnMut() -> A,
) {
    let tree = sample_tree();
    for prefix in prefixes() {
        let store = fresh();
        save_all(&store, &tree).await;
        store
            .remove_range(&prefix)
            .await
            .unwrap_or_else(|e| panic!("remove_range({prefix:?}) failed: {e}"));
        let expected: BTreeMap<_, _> = tree
            .iter()
            .filter(|(k, _)| !k.starts_with(&prefix))
            .cloned()
            .collect();
        assert_eq!(
            sorted_range(&store, &key(&[])).await,
            expected,
            "what remove_range({prefix:?}) left"
        );
        for (k, _) in tree.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            assert_eq!(
                store.load(k).await.expect("load"),
                None,
                "{k:?} survived remove_range({prefix:?})"
            );
        }
    }
}

async fn many_keys<A: StorageAdapter>(store: &A) {
    let entries: Vec<_> = (0..1000)
        .map(|i| {
            (
                key(&[DOC_A, "incremental", &hex_name(i)]),
                i.to_string().into_bytes(),
            )
        })
        .collect();
    save_all(store, &entries).await;
    assert_eq!(
        sorted_range(store, &key(&[DOC_A, "incremental"])).await,
        entries.iter().cloned().collect(),
        "1000 keys"
    );
    store
        .remove_range(&key(&[DOC_A]))
        .await
        .expect("remove_range");
    assert!(
        sorted_range(store, &key(&[DOC_A])).await.is_empty(),
        "1000 keys removed"
    );
}

async fn concurrent_saves<A: StorageAdapter>(store: &A) {
    let entries: Vec<_> = (0..200)
        .map(|i| {
            (
                key(&[DOC_B, "incremental", &hex_name(i)]),
                vec![i as u8; 1000 + i],
            )
        })
        .collect();
    let saves = entries.iter().map(|(k, v)| store.save(k, v.clone()));
    for result in join_all(saves).await {
        result.expect("concurrent save");
    }
    // Many writers of one key: chunk names are content hashes, so they write the same bytes.
    let shared = key(&[DOC_B, "snapshot", &hex_name(0)]);
    for result in join_all((0..50).map(|_| store.save(&shared, b"same bytes".to_vec()))).await {
        result.expect("concurrent save of one key");
    }
    let mut expected: BTreeMap<_, _> = entries.into_iter().collect();
    expected.insert(shared, b"same bytes".to_vec());
    assert_eq!(
        sorted_range(store, &key(&[DOC_B])).await,
        expected,
        "every concurrent save landed whole"
    );
}
