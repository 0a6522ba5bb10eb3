//! Two repos on one SQLite file (as two processes would share it): each edits, compacts and
//! reloads the same document in turn, then both stop; a third repo on the file finds every
//! change either of them made.

use std::time::Duration;

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use tandem_repo::Repo;
use tandem_storage_sqlite::SqliteStorage;

async fn open(path: &std::path::Path) -> Repo {
    Repo::builder()
        .storage(SqliteStorage::open(path).expect("open"))
        .save_debounce(Duration::from_millis(1))
        .start()
        .await
        .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_on_one_file_lose_nothing_across_edits_compactions_and_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.sqlite");
    let (mut a, mut b) = (open(&path).await, open(&path).await);
    let id = a.create_empty().await.unwrap().document_id().clone();
    a.flush().await.unwrap();
    let mut written = Vec::new();
    for round in 0..4 {
        for (name, repo) in [("a", &a), ("b", &b)] {
            // Loaded afresh from the file each turn: the other repo's writes are there.
            let handle = repo.find(&id).await.unwrap();
            // Enough changes for saves to compact what this repo loaded.
            for n in 0..25 {
                let key = format!("{name}-{round}-{n}");
                handle
                    .change(|tx| tx.put(ROOT, key.as_str(), n))
                    .unwrap()
                    .unwrap();
                written.push(key);
                if n % 5 == 0 {
                    repo.flush().await.unwrap();
                }
            }
            repo.evict(&id).await.unwrap();
        }
        if round == 1 {
            // Both stop and start again on the same file.
            a.shutdown().await;
            b.shutdown().await;
            (a, b) = (open(&path).await, open(&path).await);
        }
    }
    a.shutdown().await;
    b.shutdown().await;

    let reader = open(&path).await;
    let doc = reader.find(&id).await.unwrap();
    let missing: Vec<&String> = doc
        .with_doc(|d| {
            written
                .iter()
                .filter(|key| d.get(ROOT, key.as_str()).ok().flatten().is_none())
                .collect()
        })
        .unwrap();
    assert!(missing.is_empty(), "lost: {missing:?}");
    reader.shutdown().await;
}

/// Writes 25 changes named `{name}-{round}-{n}` to the document through `repo`, saving every
/// fifth; the keys written.
async fn write_round(
    repo: &Repo,
    id: &tandem_core::DocumentId,
    name: &str,
    round: usize,
) -> Vec<String> {
    let handle = repo.find(id).await.unwrap();
    let mut written = Vec::new();
    for n in 0..25 {
        let key = format!("{name}-{round}-{n}");
        handle
            .change(|tx| tx.put(ROOT, key.as_str(), n))
            .unwrap()
            .unwrap();
        written.push(key);
        if n % 5 == 0 {
            repo.flush().await.unwrap();
        }
    }
    written
}

/// The same, with both repos holding the document at once: each saves and compacts while the
/// other writes chunks it never loaded; every few rounds both reload it, and once both restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_writing_one_document_at_once_lose_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.sqlite");
    let (mut a, mut b) = (open(&path).await, open(&path).await);
    let id = a.create_empty().await.unwrap().document_id().clone();
    a.flush().await.unwrap();
    let mut written = Vec::new();
    for round in 0..6 {
        let (from_a, from_b) = tokio::join!(
            write_round(&a, &id, "a", round),
            write_round(&b, &id, "b", round)
        );
        written.extend(from_a);
        written.extend(from_b);
        if round % 2 == 1 {
            a.evict(&id).await.unwrap();
            b.evict(&id).await.unwrap();
        }
        if round == 3 {
            a.shutdown().await;
            b.shutdown().await;
            (a, b) = (open(&path).await, open(&path).await);
        }
    }
    a.shutdown().await;
    b.shutdown().await;

    let reader = open(&path).await;
    let doc = reader.find(&id).await.unwrap();
    let missing: Vec<&String> = doc
        .with_doc(|d| {
            written
                .iter()
                .filter(|key| d.get(ROOT, key.as_str()).ok().flatten().is_none())
                .collect()
        })
        .unwrap();
    assert!(
        missing.is_empty(),
        "lost {} of {}: {missing:?}",
        missing.len(),
        written.len()
    );
    reader.shutdown().await;
}
