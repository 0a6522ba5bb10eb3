//! A directory is shared with JS automerge-repo's NodeFS storage both ways: what Node writes
//! through `NodeFSStorageAdapter`, tandem's `FsStorage` reads at the same heads and content; what
//! tandem writes, Node reads through NodeFS — even with a crashed write's staging file left over.

use crate::common::{doc_to_json, node_json};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use serde_json::{json, Value as Json};
use tandem::storage_fs::FsStorage;
use tandem::{AutomergeUrl, ChunkKey, DocumentId, StorageAdapter, StorageId, StorageKey};

/// Loads a document through tandem's loader, from both chunk ranges.
async fn load(store: &FsStorage, id: &DocumentId) -> automerge::Automerge {
    let loaded = tandem::persistence::load_document(
        id,
        store.load_document(id).await.expect("load_document").chunks,
    );
    assert!(loaded.corrupt.is_empty(), "{id}: {:?}", loaded.corrupt);
    loaded.document.unwrap_or_else(|| panic!("{id} has chunks"))
}

fn hex_heads(heads: &[automerge::ChangeHash]) -> Json {
    json!(heads.iter().map(|h| h.to_string()).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_reads_what_nodefs_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let written = node_json("nodefs-write.mjs", &[dir.path().to_str().unwrap(), "5"]);
    let written = written.as_array().expect("a list of documents");
    assert_eq!(written.len(), 5);

    let store = FsStorage::open(dir.path()).unwrap();
    let storage_id = store
        .load(&StorageKey::storage_adapter_id())
        .await
        .unwrap()
        .expect("NodeFS wrote its storage id");
    assert_eq!(storage_id.len(), 36, "a UUID");
    let incrementals = store
        .load_range(&StorageKey::new(Vec::<String>::new()))
        .await
        .unwrap();
    assert!(
        incrementals
            .iter()
            .any(|(k, _)| k.parts().get(1).is_some_and(|p| p == "incremental")),
        "the JS run left incremental chunks, so both chunk kinds are read"
    );

    for js in written {
        let url: AutomergeUrl = js["url"].as_str().unwrap().parse().unwrap();
        let doc = load(&store, url.document_id()).await;
        assert_eq!(hex_heads(&doc.get_heads()), js["heads"], "{url}: heads");
        assert_eq!(doc_to_json(&doc), js["content"], "{url}: content");
    }
}

/// Documents as tandem would store them: a snapshot named by its heads, then incrementals named
/// by their content, the storage id under `["storage-adapter-id"]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodefs_reads_what_tandem_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open(dir.path()).unwrap();
    store
        .save(
            &StorageKey::storage_adapter_id(),
            StorageId::random().as_str().as_bytes().to_vec(),
        )
        .await
        .unwrap();

    let mut expected = Vec::new();
    for i in 0..4 {
        let id = DocumentId::random();
        let mut doc = AutoCommit::new();
        let title = doc.put_object(ROOT, "title", ObjType::Text).unwrap();
        doc.splice_text(&title, 0, 0, &format!("doc {i}")).unwrap();
        let items = doc.put_object(ROOT, "items", ObjType::List).unwrap();
        for n in 0..10 {
            doc.insert(&items, n, n as i64).unwrap();
        }
        doc.put(ROOT, "done", i % 2 == 0).unwrap();
        doc.commit();
        let snapshot = doc.save();
        store
            .save(
                &ChunkKey::snapshot(id.clone(), &doc.get_heads()).to_storage_key(),
                snapshot,
            )
            .await
            .unwrap();
        // Later changes as incrementals, as a repo saves them between compactions.
        for n in 0..3 {
            let before = doc.get_heads();
            doc.splice_text(&title, 0, 0, &format!("v{n} ")).unwrap();
            doc.put(ROOT, "revision", n as i64).unwrap();
            doc.commit();
            let bytes = doc.save_after(&before);
            store
                .save(
                    &ChunkKey::incremental(id.clone(), &bytes).to_storage_key(),
                    bytes,
                )
                .await
                .unwrap();
        }
        expected.push((
            id.url().to_string(),
            hex_heads(&doc.get_heads()),
            doc_to_json(&doc),
        ));
    }
    // A crashed write's leftover must not disturb NodeFS: it lives outside every key's path.
    std::fs::write(dir.path().join(".tandem-tmp/999999-0-0.tmp"), b"torn").unwrap();

    let mut args = vec![dir.path().to_str().unwrap().to_owned()];
    args.extend(expected.iter().map(|(url, _, _)| url.clone()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let read = node_json("nodefs-read.mjs", &args);
    for ((url, heads, content), js) in expected.iter().zip(read.as_array().expect("a list")) {
        assert_eq!(&js["url"], url);
        assert_eq!(&js["heads"], heads, "{url}: NodeFS sees our heads");
        assert_eq!(&js["content"], content, "{url}: NodeFS sees our content");
    }
}
