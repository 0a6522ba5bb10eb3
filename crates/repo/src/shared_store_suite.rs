//! Two repos on one store (as two processes would share a database or a file) edit, compact,
//! reload and restart, in fixed scenarios and in seeded random interleavings; a third repo on
//! the store then finds every change either of them made.
//! For stores that several processes may open at once (feature `test-suite`).
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use tandem_repo::shared_store_suite::{self, OpenStore};
//! use tandem_storage_mem::MemoryStorage;
//!
//! /// Every handle on one in-memory store.
//! struct Shared(MemoryStorage);
//!
//! impl OpenStore for Shared {
//!     type Store = MemoryStorage;
//!     async fn open(&self) -> MemoryStorage {
//!         self.0.clone()
//!     }
//! }
//!
//! shared_store_suite::run_all(&Shared(MemoryStorage::new())).await;
//! # });
//! ```

use std::time::Duration;

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tandem_core::{DocumentId, StorageAdapter};

use crate::Repo;

/// Runs both scenarios and [`interleaved`] with eight seeds, each on its own document in the
/// store.
pub async fn run_all<O: OpenStore>(store: &O) {
    taking_turns(store).await;
    writing_at_once(store).await;
    for seed in 0..8 {
        interleaved(store, seed).await;
    }
}

/// Opens a new handle on the shared store (a new connection, as another process would).
pub trait OpenStore: Sync {
    /// The adapter.
    type Store: StorageAdapter;
    /// A new handle on the same store.
    fn open(&self) -> impl std::future::Future<Output = Self::Store> + Send;
}

async fn open<O: OpenStore>(store: &O) -> Repo {
    Repo::builder()
        .storage(store.open().await)
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

/// Stops both repos, then checks that a fresh repo on the store holds every key written.
async fn nothing_lost<O: OpenStore>(
    store: &O,
    repos: [Repo; 2],
    id: &DocumentId,
    written: &[String],
) {
    for repo in repos {
        repo.shutdown().await;
    }
    let reader = open(store).await;
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

/// Two repos opened on the store, and a document the first made and saved.
async fn two_repos<O: OpenStore>(store: &O) -> ([Repo; 2], DocumentId) {
    let (a, b) = (open(store).await, open(store).await);
    let id = a.create_empty().await.unwrap().document_id().clone();
    a.flush().await.unwrap();
    ([a, b], id)
}

/// Both stop and start again on the same store.
async fn restart<O: OpenStore>(store: &O, repos: [Repo; 2]) -> [Repo; 2] {
    for repo in repos {
        repo.shutdown().await;
    }
    [open(store).await, open(store).await]
}

/// The repos take turns: each loads the document afresh (the other's writes are in the store),
/// writes, and unloads it.
pub async fn taking_turns<O: OpenStore>(store: &O) {
    let (mut repos, id) = two_repos(store).await;
    let mut written = Vec::new();
    for round in 0..4 {
        for (name, repo) in ["a", "b"].into_iter().zip(&repos) {
            written.extend(write_round(repo, &id, name, round).await);
            repo.evict(&id).await.unwrap();
        }
        if round == 1 {
            repos = restart(store, repos).await;
        }
    }
    nothing_lost(store, repos, &id, &written).await;
}

/// Both repos hold the document at once: each saves and compacts while the other writes chunks
/// it never loaded; every other round both reload it, and once both restart.
pub async fn writing_at_once<O: OpenStore>(store: &O) {
    let (mut repos, id) = two_repos(store).await;
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
            repos = restart(store, repos).await;
        }
    }
    nothing_lost(store, repos, &id, &written).await;
}

/// What one step of [`interleaved`] does, to one of the two repos or both.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A few changes, of a few hundred bytes each (enough for saves to compact).
    Edit(usize),
    /// Both write at once.
    BothEdit,
    /// Saves now.
    Flush(usize),
    /// Takes the document out of memory (saved first); the next step loads it from the store,
    /// with whatever the other wrote meanwhile.
    Evict(usize),
    /// Stops and starts again on the store.
    Restart(usize),
}

/// A property test in a fixed number of cases: two repos on the store in a random
/// interleaving of edits (alone or at once), saves, unloads and restarts, drawn from `seed`;
/// a third then finds every change either made. A failure's output names its seed, which
/// replays its steps (the timing of saves within them may differ).
pub async fn interleaved<O: OpenStore>(store: &O, seed: u64) {
    eprintln!("shared store: interleaved steps from seed {seed}");
    // ChaCha8: the same steps from a seed on every platform and version.
    let mut random = ChaCha8Rng::seed_from_u64(seed);
    let (mut repos, id) = two_repos(store).await;
    let mut written = Vec::new();
    let mut steps = Vec::new();
    for n in 0..40 {
        let p = random.random_range(0..2);
        let step = match random.random_range(0..10) {
            0..=3 => Step::Edit(p),
            4 => Step::BothEdit,
            5 | 6 => Step::Flush(p),
            7 | 8 => Step::Evict(p),
            _ => Step::Restart(p),
        };
        steps.push(step);
        match step {
            Step::Edit(p) => {
                let name = format!("s{seed}-{p}-{n}");
                written.extend(edit(&repos[p], &id, &name, &mut random).await);
            }
            Step::BothEdit => {
                let (a, b) = (format!("s{seed}-0-{n}"), format!("s{seed}-1-{n}"));
                let (mut r0, mut r1) = (
                    ChaCha8Rng::seed_from_u64(random.random()),
                    ChaCha8Rng::seed_from_u64(random.random()),
                );
                let (from_a, from_b) = tokio::join!(
                    edit(&repos[0], &id, &a, &mut r0),
                    edit(&repos[1], &id, &b, &mut r1)
                );
                written.extend(from_a);
                written.extend(from_b);
            }
            Step::Flush(p) => repos[p].flush().await.unwrap(),
            Step::Evict(p) => repos[p].evict(&id).await.unwrap(),
            Step::Restart(p) => {
                let fresh = open(store).await;
                std::mem::replace(&mut repos[p], fresh).shutdown().await;
            }
        }
    }
    eprintln!("seed {seed}'s steps: {steps:?}");
    nothing_lost(store, repos, &id, &written).await;
}

/// One to four changes named `{name}-{k}` through `repo`; the keys written.
async fn edit(repo: &Repo, id: &DocumentId, name: &str, random: &mut ChaCha8Rng) -> Vec<String> {
    let handle = repo.find(id).await.unwrap();
    let count = random.random_range(1..=4);
    let mut written = Vec::new();
    for k in 0..count {
        let key = format!("{name}-{k}");
        // Incompressible, so that chunks grow and saves compact.
        let value: String = (0..300)
            .map(|_| char::from(random.random_range(b'a'..=b'z')))
            .collect();
        handle
            .change(|tx| tx.put(ROOT, key.as_str(), value))
            .unwrap()
            .unwrap();
        written.push(key);
    }
    written
}
