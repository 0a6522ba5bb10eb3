//! Two repos on one SQLite file (as two processes would share it) edit, compact, reload and
//! restart; a third repo on the file then finds every change either of them made.

use std::path::Path;
use std::time::Duration;

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use tandem_core::DocumentId;
use tandem_repo::Repo;
use tandem_storage_sqlite::SqliteStorage;

async fn open(path: &Path) -> Repo {
    Repo::builder()
        .storage(SqliteStorage::open(path).expect("open"))
        .save_debounce(Duration::from_millis(1))
        .start()
        .await
        .expect("start")
}

/// Writes 25 changes named `{name}-{round}-{n}` to the document through `repo`, saving every
/// fifth (enough for saves to compact what the repo loaded); the keys written.
async fn write_round(repo: &Repo, id: &DocumentId, name: &str, round: usize) -> Vec<String> {
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

/// Stops both repos, then checks that a fresh repo on the file holds every key written.
async fn nothing_lost(path: &Path, repos: [Repo; 2], id: &DocumentId, written: &[String]) {
    for repo in repos {
        repo.shutdown().await;
    }
    let reader = open(path).await;
    let doc = reader.find(id).await.unwrap();
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

/// Two repos opened on `path`, and a document the first made and saved.
async fn two_repos(path: &Path) -> ([Repo; 2], DocumentId) {
    let (a, b) = (open(path).await, open(path).await);
    let id = a.create_empty().await.unwrap().document_id().clone();
    a.flush().await.unwrap();
    ([a, b], id)
}

/// Both stop and start again on the same file.
async fn restart(path: &Path, repos: [Repo; 2]) -> [Repo; 2] {
    for repo in repos {
        repo.shutdown().await;
    }
    [open(path).await, open(path).await]
}

/// The repos take turns: each loads the document afresh (the other's writes are in the file),
/// writes, and unloads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_on_one_file_lose_nothing_across_edits_compactions_and_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.sqlite");
    let (mut repos, id) = two_repos(&path).await;
    let mut written = Vec::new();
    for round in 0..4 {
        for (name, repo) in ["a", "b"].into_iter().zip(&repos) {
            written.extend(write_round(repo, &id, name, round).await);
            repo.evict(&id).await.unwrap();
        }
        if round == 1 {
            repos = restart(&path, repos).await;
        }
    }
    nothing_lost(&path, repos, &id, &written).await;
}

/// Both repos hold the document at once: each saves and compacts while the other writes chunks
/// it never loaded; every other round both reload it, and once both restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_writing_one_document_at_once_lose_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.sqlite");
    let (mut repos, id) = two_repos(&path).await;
    let mut written = Vec::new();
    for round in 0..6 {
        let (from_a, from_b) = tokio::join!(
            write_round(&repos[0], &id, "a", round),
            write_round(&repos[1], &id, "b", round)
        );
        written.extend(from_a);
        written.extend(from_b);
        if round % 2 == 1 {
            for repo in &repos {
                repo.evict(&id).await.unwrap();
            }
        }
        if round == 3 {
            repos = restart(&path, repos).await;
        }
    }
    nothing_lost(&path, repos, &id, &written).await;
}
