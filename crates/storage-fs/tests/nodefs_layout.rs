//! The directory trees NodeFS wrote (captured from automerge-repo 2.5.6) read back through
//! FsStorage as the same keys, values and documents; and FsStorage writes each of those keys to
//! the very path NodeFS used.

use std::path::Path;

use automerge::{Automerge, ChangeHash};
use serde_json::Value;
use tandem_core::{DocumentId, StorageAdapter, StorageKey};
use tandem_storage_fs::FsStorage;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../core/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

fn key_of(file: &Value) -> StorageKey {
    StorageKey::new(
        file["storageKey"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap()),
    )
}

/// Every captured tree: (where it came from, its files, the hex heads the document had then).
fn trees() -> Vec<(String, Vec<Value>, Option<Vec<ChangeHash>>)> {
    let mut out = Vec::new();
    let nodefs = fixture("storage_nodefs.json");
    for (scenario, body) in nodefs["scenarios"].as_object().unwrap() {
        let steps = body["steps"].as_array().cloned().unwrap_or_default();
        for (i, step) in steps.iter().enumerate() {
            let Some(tree) = step["tree"].as_array() else {
                continue;
            };
            let heads = step["hexHeads"].as_array().map(|hs| {
                hs.iter()
                    .map(|h| h.as_str().unwrap().parse().unwrap())
                    .collect()
            });
            out.push((format!("{scenario} step {i}"), tree.clone(), heads));
        }
    }
    for capture in ["wire_capture.json", "wire_capture_generous_server.json"] {
        for (side, tree) in fixture(capture)["storageTrees"].as_object().unwrap() {
            out.push((
                format!("{capture} {side}"),
                tree.as_array().unwrap().clone(),
                None,
            ));
        }
    }
    out
}

fn lay_out(dir: &Path, files: &[Value]) {
    for file in files {
        let path = dir.join(file["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, hex::decode(file["hex"].as_str().unwrap()).unwrap()).unwrap();
    }
}

/// Loads a document through tandem's loader, from both chunk ranges.
async fn load_document(store: &FsStorage, id: &DocumentId) -> Option<Automerge> {
    let loaded = tandem_core::persistence::load_document(
        id,
        tandem_core::storage::StorageAdapter::load_document(store, id)
            .await
            .unwrap()
            .chunks,
    );
    assert!(loaded.corrupt.is_empty(), "{id}: {:?}", loaded.corrupt);
    loaded.document
}

#[tokio::test]
async fn nodefs_trees_read_back_as_their_keys_and_documents() {
    let all = trees();
    assert!(all.len() >= 10, "fixtures hold the captured trees");
    for (name, files, heads) in all {
        let dir = tempfile::tempdir().unwrap();
        lay_out(dir.path(), &files);
        let store = FsStorage::open(dir.path()).unwrap();

        let mut expected: Vec<(StorageKey, Vec<u8>)> = files
            .iter()
            .map(|f| (key_of(f), hex::decode(f["hex"].as_str().unwrap()).unwrap()))
            .collect();
        let mut found = store
            .load_range(&StorageKey::new(Vec::<String>::new()))
            .await
            .unwrap();
        expected.sort();
        found.sort();
        assert_eq!(found, expected, "{name}: every file reads back as its key");

        for (key, value) in &expected {
            assert_eq!(
                store.load(key).await.unwrap().as_ref(),
                Some(value),
                "{name}: load {key:?}"
            );
        }
        // Documents with content chunks (a sync-state file alone is left by an unavailable doc).
        let docs: std::collections::BTreeSet<DocumentId> = expected
            .iter()
            .filter(|(k, _)| {
                k.parts()
                    .get(1)
                    .is_some_and(|kind| kind == "snapshot" || kind == "incremental")
            })
            .filter_map(|(k, _)| k.parts()[0].parse().ok())
            .collect();
        for id in docs {
            let doc = load_document(&store, &id)
                .await
                .unwrap_or_else(|| panic!("{name}: {id} has chunks"));
            if let Some(heads) = &heads {
                assert_eq!(
                    &doc.get_heads(),
                    heads,
                    "{name}: the document loads at the captured heads"
                );
            }
        }
    }
}

#[tokio::test]
async fn saving_the_same_keys_writes_the_nodefs_paths() {
    for (name, files, _) in trees() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStorage::open(dir.path()).unwrap();
        for file in &files {
            store
                .save(
                    &key_of(file),
                    hex::decode(file["hex"].as_str().unwrap()).unwrap(),
                )
                .await
                .unwrap();
        }
        for file in &files {
            let path = dir.path().join(file["path"].as_str().unwrap());
            let on_disk =
                std::fs::read(&path).unwrap_or_else(|_| panic!("{name}: {path:?} written"));
            assert_eq!(hex::encode(on_disk), file["hex"].as_str().unwrap());
        }
        let mut written = Vec::new();
        collect_files(dir.path(), dir.path(), &mut written);
        assert_eq!(
            written.len(),
            files.len(),
            "{name}: nothing else was left in the directory: {written:?}"
        );
    }
}

fn collect_files(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            collect_files(base, &entry.path(), out);
        } else {
            out.push(
                entry
                    .path()
                    .strip_prefix(base)
                    .unwrap()
                    .display()
                    .to_string(),
            );
        }
    }
}

/// The JS key-mapping probe: keys NodeFS wrote, including the short ones we refuse to write.
#[tokio::test]
async fn js_key_mapping_edge_cases() {
    let mapping = &fixture("storage_nodefs.json")["keyMapping"];
    let dir = tempfile::tempdir().unwrap();
    for path in mapping["filesOnDisk"].as_array().unwrap() {
        let path = dir.path().join(path.as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, path.to_string_lossy().as_bytes()).unwrap();
    }
    let store = FsStorage::open(dir.path()).unwrap();
    let keys = |found: Vec<(StorageKey, Vec<u8>)>| {
        let mut keys: Vec<Vec<String>> =
            found.into_iter().map(|(k, _)| k.parts().to_vec()).collect();
        keys.sort();
        serde_json::to_value(keys).unwrap()
    };
    let doc = "2kGRUrX8w2KjaHC3xek1kijSVeee";
    assert_eq!(
        keys(store.load_range(&StorageKey::new([doc])).await.unwrap()),
        mapping["loadRange_docId"]
    );
    assert_eq!(
        keys(
            store
                .load_range(&StorageKey::new([doc, "snapshot"]))
                .await
                .unwrap()
        ),
        mapping["loadRange_docId_snapshot"]
    );
    assert_eq!(
        keys(
            store
                .load_range(&StorageKey::new([doc, "incremental"]))
                .await
                .unwrap()
        ),
        mapping["loadRange_docId_incremental_missing"]
    );
    assert_eq!(
        keys(store.load_range(&StorageKey::new(["myns"])).await.unwrap()),
        mapping["loadRange_myns"]
    );
    // NodeFS throws ENOTDIR for a prefix naming a file, and on the empty prefix; both are defined
    // here: the one key, and every key.
    assert_eq!(
        keys(
            store
                .load_range(&StorageKey::storage_adapter_id())
                .await
                .unwrap()
        ),
        serde_json::json!([["storage-adapter-id"]])
    );
    assert_eq!(
        store
            .load_range(&StorageKey::new(Vec::<String>::new()))
            .await
            .unwrap()
            .len(),
        6
    );
    // Short first parts JS wrote are read (one-element prefixes shorter than two characters too)…
    assert_eq!(
        keys(store.load_range(&StorageKey::new(["a"])).await.unwrap()),
        serde_json::json!([["a"]])
    );
    assert!(store.load(&StorageKey::new(["a"])).await.unwrap().is_some());
    store
        .remove(&StorageKey::new(["a"]))
        .await
        .expect("a JS key we read, we can remove");
    assert!(store.load(&StorageKey::new(["a"])).await.unwrap().is_none());
    // …but not written: NodeFS could not tell ["ab", "x"] from ["abx"].
    assert!(matches!(
        store.save(&StorageKey::new(["ab"]), vec![1]).await,
        Err(tandem_core::StorageError::InvalidKey { .. })
    ));
    assert!(matches!(
        store
            .save(&StorageKey::new([doc, "..", "x"]), vec![1])
            .await,
        Err(tandem_core::StorageError::InvalidKey { .. })
    ));
}
