//! tandem-storage-fs against automerge-repo's NodeFSStorageAdapter, in one run on one machine.
//!
//! ```text
//! cargo bench -p tandem-storage-fs --bench vs_nodefs            # 10,000 documents
//! DOCS=1000 cargo bench -p tandem-storage-fs --bench vs_nodefs  # another size
//! ```
//!
//! - **save**: every document's snapshot chunk, all at once, into an empty directory. tandem writes
//!   atomically and durably (fsync); NodeFS writes in place with no fsync.
//! - **cold load**: a fresh store on the directory NodeFS wrote; for every document, its snapshot
//!   and incremental ranges, then `tandem_core::persistence::load_document` (one strict automerge
//!   load of the chunks) — what a repo does on `find`. NodeFS's side runs automerge-repo's own
//!   steps: `loadRange` twice and `loadIncremental`.
//!
//! Each figure is the median of `REPEAT` rounds (default 3) that alternate the two sides; every
//! save round starts after a `sync`, so that no side pays for the other's leftover writeback.
//! `TANDEM_ONLY=1` runs tandem's side alone (for profiling; the load then reads tandem's own
//! directory). Both sides get the same keys and bytes. Node runs the pinned packages in `tests/js`
//! (`npm ci` there first). Prints a table with ratios (NodeFS time / tandem time: above 1 means
//! tandem is faster) and one JSON line per measurement.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use futures::future::join_all;
use tandem_core::{ChunkKey, DocumentId, StorageAdapter, StorageKey};
use tandem_storage_fs::FsStorage;

fn js_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

fn node(args: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .args(args)
        .current_dir(js_dir())
        .output()
        .expect("node (Node 20) is needed");
    assert!(
        out.status.success(),
        "node {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from node")
}

fn cpu_ms() -> f64 {
    // utime + stime of this process, from /proc (Linux), in milliseconds.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks * 10.0
}

/// `{title: "doc i", items: [0..9]}`, as a JS repo.create would make it.
fn documents(count: usize) -> Vec<(StorageKey, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let mut doc = AutoCommit::new();
            let title = doc.put_object(ROOT, "title", ObjType::Text).unwrap();
            doc.splice_text(&title, 0, 0, &format!("doc {i}")).unwrap();
            let items = doc.put_object(ROOT, "items", ObjType::List).unwrap();
            for n in 0..10 {
                doc.insert(&items, n, n as i64).unwrap();
            }
            let key = ChunkKey::snapshot(DocumentId::random(), &doc.get_heads()).to_storage_key();
            (key, doc.save())
        })
        .collect()
}

async fn load_all(store: &FsStorage, ids: &[DocumentId]) -> usize {
    let loads = ids.iter().map(|id| async move {
        let loaded = tandem_core::persistence::load_document(
            id,
            tandem_core::storage::StorageAdapter::load_document(store, id)
                .await
                .expect("load_document")
                .chunks,
        );
        loaded.document.is_some()
    });
    join_all(loads)
        .await
        .into_iter()
        .filter(|loaded| *loaded)
        .count()
}

struct Row {
    name: &'static str,
    tandem_ms: f64,
    tandem_cpu_ms: f64,
    nodefs_ms: f64,
    nodefs_cpu_ms: f64,
}

/// One run's wall and CPU milliseconds.
#[derive(Clone, Copy)]
struct Figure {
    ms: f64,
    cpu_ms: f64,
}

/// Every round's figures of one measurement, for both sides.
#[derive(Default)]
struct Samples {
    tandem: Vec<Figure>,
    nodefs: Vec<Figure>,
}

impl Samples {
    /// The medians (NaN for a side that did not run).
    fn row(&self, name: &'static str) -> Row {
        let median = |figures: &[Figure], pick: fn(&Figure) -> f64| {
            let mut values: Vec<f64> = figures.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
        };
        Row {
            name,
            tandem_ms: median(&self.tandem, |f| f.ms),
            tandem_cpu_ms: median(&self.tandem, |f| f.cpu_ms),
            nodefs_ms: median(&self.nodefs, |f| f.ms),
            nodefs_cpu_ms: median(&self.nodefs, |f| f.cpu_ms),
        }
    }
}

/// Writes out every dirty page of the machine (`sync`), so that a round starts from a quiet disk:
/// tandem's saves sync the filesystem, and would otherwise also pay for the writeback NodeFS
/// left behind in the round before (NodeFS never syncs).
fn settle_disk() {
    let synced = Command::new("sync").status();
    assert!(synced.is_ok_and(|s| s.success()), "sync failed");
}

/// Wall and CPU time of `work`, in this process.
fn measure(work: impl FnOnce()) -> Figure {
    let (cpu0, start) = (cpu_ms(), Instant::now());
    work();
    Figure {
        ms: start.elapsed().as_secs_f64() * 1000.0,
        cpu_ms: cpu_ms() - cpu0,
    }
}

/// The figure a `nodefs-bench.mjs` run reports, checking its document count if one is expected.
fn node_figure(js: serde_json::Value, expect_docs: Option<usize>) -> Figure {
    if let Some(count) = expect_docs {
        assert_eq!(
            js["docs"].as_u64(),
            Some(count as u64),
            "NodeFS loaded every document"
        );
    }
    Figure {
        ms: js["ms"].as_f64().unwrap(),
        cpu_ms: js["cpuMs"].as_f64().unwrap(),
    }
}

fn main() {
    let count: usize = std::env::var("DOCS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(10_000);
    assert!(
        js_dir()
            .join("node_modules/@automerge/automerge-repo-storage-nodefs")
            .exists(),
        "run `npm ci` in tests/js first"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let docs = documents(count);
    let ids: Vec<DocumentId> = docs
        .iter()
        .map(|(k, _)| k.parts()[0].parse().unwrap())
        .collect();

    let corpus = work.path().join("corpus.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&corpus).unwrap());
    for (key, bytes) in &docs {
        writeln!(
            file,
            "{}",
            serde_json::json!({"key": key.parts(), "hex": hex::encode(bytes)})
        )
        .unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();

    let repeat: usize = std::env::var("REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let tandem_only = std::env::var("TANDEM_ONLY").is_ok_and(|v| v == "1");
    let mut save = Samples::default();
    let mut load = Samples::default();
    // Rounds alternate the two sides, so that a slow spell of this machine (or of the filesystem)
    // falls on both; each figure is the median of its rounds.
    for round in 0..repeat {
        let tandem_dir = work.path().join(format!("tandem-{round}"));
        settle_disk();
        save.tandem.push(measure(|| {
            runtime.block_on(async {
                let store = FsStorage::open(&tandem_dir).unwrap();
                for result in join_all(docs.iter().map(|(k, v)| store.save(k, v.clone()))).await {
                    result.expect("save");
                }
            })
        }));
        let nodefs_dir = work.path().join(format!("nodefs-{round}"));
        if tandem_only {
            // Profiling our side alone: load what we wrote (the same layout).
            std::fs::rename(&tandem_dir, &nodefs_dir).unwrap();
        } else {
            settle_disk();
            save.nodefs.push(node_figure(
                node(&[
                    "nodefs-bench.mjs",
                    "save",
                    nodefs_dir.to_str().unwrap(),
                    corpus.to_str().unwrap(),
                ]),
                None,
            ));
        }

        // cold load, both from a directory NodeFS wrote
        let mut loaded = 0;
        load.tandem.push(measure(|| {
            loaded = runtime
                .block_on(async { load_all(&FsStorage::open(&nodefs_dir).unwrap(), &ids).await })
        }));
        assert_eq!(loaded, count, "tandem loaded every document");
        if !tandem_only {
            load.nodefs.push(node_figure(
                node(&["nodefs-bench.mjs", "load", nodefs_dir.to_str().unwrap()]),
                Some(count),
            ));
        }
    }
    let rows = [save.row("save"), load.row("cold load")];

    println!(
        "\n{count} documents, {} bytes each on average",
        docs.iter().map(|(_, v)| v.len()).sum::<usize>() / count
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>14}",
        "", "tandem ms", "tandem cpu", "NodeFS ms", "NodeFS cpu", "NodeFS/tandem"
    );
    for r in &rows {
        println!(
            "{:<10} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>13.2}x",
            r.name,
            r.tandem_ms,
            r.tandem_cpu_ms,
            r.nodefs_ms,
            r.nodefs_cpu_ms,
            r.nodefs_ms / r.tandem_ms
        );
    }
    for r in &rows {
        println!(
            "{}",
            serde_json::json!({"bench": "storage-fs-vs-nodefs", "scenario": r.name, "docs": count,
                "tandem_ms": r.tandem_ms, "tandem_cpu_ms": r.tandem_cpu_ms,
                "nodefs_ms": r.nodefs_ms, "nodefs_cpu_ms": r.nodefs_cpu_ms, "ratio": r.nodefs_ms / r.tandem_ms})
        );
    }
}
