//! Memory stays bounded: documents nobody holds are saved and unloaded after the idle time.

mod common;

use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use common::*;
use tandem_repo::Repo;
use tandem_storage_mem::MemoryStorage;

async fn wait_until_unloaded(repo: &Repo, at_most: usize) -> usize {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let held = repo.documents().await.unwrap().len();
            if held <= at_most {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // polling interval, not a guess
        }
    })
    .await
    .expect("documents were not unloaded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_documents_touched_once_are_unloaded_and_still_found() {
    let storage = MemoryStorage::new();
    let repo = Repo::builder()
        .storage(storage.clone())
        .save_debounce(Duration::from_millis(10))
        .idle_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10_000u32 {
        let (handle, ()) = repo
            .create_with(|tx| tx.put(ROOT, "n", i as i64).unwrap())
            .await
            .unwrap();
        ids.push(handle.document_id().clone());
    }
    // One handle is still held: it must stay.
    let kept = repo.find(&ids[0]).await.unwrap();
    assert_eq!(wait_until_unloaded(&repo, 1).await, 1);
    assert_eq!(repo.documents().await.unwrap(), vec![ids[0].clone()]);

    for (i, id) in ids.iter().enumerate().step_by(997) {
        let found = repo.find(id).await.unwrap();
        let n = found
            .with_doc(|d| d.get(ROOT, "n").unwrap().unwrap().0.as_i64())
            .unwrap();
        assert_eq!(n, Some(i as i64));
    }
    kept.change(|tx| tx.put(ROOT, "still", true).unwrap())
        .unwrap();
    repo.shutdown().await;
}
