//! Chunk keys and names: for every document and storage tree the JS packages wrote, we compute
//! exactly the file names they chose (docs/protocol.md#keys-and-chunk-names).

use crate::common::{fixture, hex_of};
use automerge::{Automerge, ChangeHash};
use serde_json::Value;
use tandem_core::{content_hash, heads_hash, ChunkKey, ChunkKind, DocumentId, StorageKey};

fn hashes(list: &Value) -> Vec<ChangeHash> {
    list.as_array()
        .expect("heads")
        .iter()
        .map(|h| h.as_str().unwrap().parse().expect("hex hash"))
        .collect()
}

#[test]
fn saved_documents_get_the_js_file_names() {
    let docs = fixture("automerge_docs.json");
    for doc in docs["docs"].as_array().expect("docs") {
        let name = doc["name"].as_str().unwrap();
        let heads = hashes(&doc["hexHeads"]);
        assert_eq!(
            heads_hash(&heads),
            doc["snapshotFileName"],
            "{name}: snapshot name"
        );
        let mut reversed = heads.clone();
        reversed.reverse();
        assert_eq!(
            heads_hash(&reversed),
            doc["snapshotFileName"],
            "{name}: the name does not depend on head order"
        );

        let saved = hex_of(&doc["saveHex"]);
        let loaded = Automerge::load(&saved).expect("JS save loads");
        assert_eq!(loaded.get_heads(), heads, "{name}: heads");
        assert_eq!(
            content_hash(&saved),
            doc["saveSha256"],
            "{name}: content hash"
        );
        // The Rust save of the same document is the same bytes, hence the same snapshot file.
        assert_eq!(
            hex::encode(loaded.save()),
            doc["saveHex"].as_str().unwrap(),
            "{name}: Rust save() is byte-identical"
        );

        if let Some(incremental) = doc.get("incrementalHex") {
            let bytes = hex_of(incremental);
            assert_eq!(
                content_hash(&bytes),
                doc["incrementalFileName"],
                "{name}: incremental name"
            );
            let since = hashes(&doc["sinceHeads"]);
            assert_eq!(
                loaded.save_after(&since),
                bytes,
                "{name}: Rust save_after() is byte-identical to saveSince"
            );
        }
    }
}

/// Every file object (with `path`, `kind`, `storageKey`, `hex`) anywhere in a fixture.
fn stored_files(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(o)
            if o.contains_key("path") && o.contains_key("storageKey") && o.contains_key("hex") =>
        {
            out.push(value.clone())
        }
        Value::Object(o) => o.values().for_each(|v| stored_files(v, out)),
        Value::Array(items) => items.iter().for_each(|v| stored_files(v, out)),
        _ => {}
    }
}

fn check_tree_files(fixture_name: &str) -> usize {
    let mut files = Vec::new();
    stored_files(&fixture(fixture_name), &mut files);
    for file in &files {
        let path = file["path"].as_str().unwrap();
        let key = StorageKey::new(
            file["storageKey"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap()),
        );
        let bytes = hex_of(&file["hex"]);
        match file["kind"].as_str().unwrap() {
            "storage-adapter-id" => {
                assert_eq!(key, StorageKey::storage_adapter_id(), "{path}");
                assert!(
                    ChunkKey::parse(&key).is_none(),
                    "{path}: not a document chunk"
                );
            }
            kind => {
                let chunk = ChunkKey::parse(&key).unwrap_or_else(|| panic!("{path}: a chunk key"));
                assert_eq!(chunk.to_storage_key(), key, "{path}: key round trip");
                let document_id: DocumentId = key.parts()[0].parse().expect("doc id");
                match (kind, chunk.kind) {
                    ("snapshot", ChunkKind::Snapshot) => {
                        let heads = Automerge::load(&bytes).expect("snapshot loads").get_heads();
                        assert_eq!(
                            ChunkKey::snapshot(document_id, &heads),
                            chunk,
                            "{path}: snapshot named by heads"
                        );
                    }
                    ("incremental", ChunkKind::Incremental) => {
                        assert_eq!(
                            ChunkKey::incremental(document_id, &bytes),
                            chunk,
                            "{path}: named by content"
                        );
                    }
                    ("sync-state", ChunkKind::SyncState) => {
                        automerge::sync::State::decode(&bytes).expect("sync state decodes");
                    }
                    other => panic!("{path}: kind {other:?}"),
                }
            }
        }
    }
    files.len()
}

#[test]
fn nodefs_trees_are_named_as_we_name_them() {
    assert!(check_tree_files("storage_nodefs.json") >= 20);
}

#[test]
fn server_and_client_trees_from_the_wire_captures() {
    assert!(check_tree_files("wire_capture.json") >= 3);
    assert!(check_tree_files("wire_capture_generous_server.json") >= 3);
}

#[test]
fn chunk_keys_refuse_other_shapes() {
    let doc = "2kGRUrX8w2KjaHC3xek1kijSVeee";
    assert!(ChunkKey::parse(&StorageKey::new([doc, "snapshot"])).is_none());
    assert!(ChunkKey::parse(&StorageKey::new([doc, "bogus", "x"])).is_none());
    assert!(ChunkKey::parse(&StorageKey::new(["not-an-id", "snapshot", "x"])).is_none());
    assert!(ChunkKey::parse(&StorageKey::new([doc, "snapshot", "x", "y"])).is_none());
    let key = ChunkKey::parse(&StorageKey::new([doc, "snapshot", "deadbeef"]))
        .expect("names are not verified");
    assert_eq!(key.name, "deadbeef");
    assert_eq!(
        ChunkKind::Incremental.prefix(&key.document_id),
        StorageKey::new([doc, "incremental"])
    );
}
