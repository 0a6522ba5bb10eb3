//! Loading documents from chunks and planning saves: the captured NodeFS trees load at their
//! heads, corrupt chunks cost only themselves, the compaction rule makes the decisions JS made,
//! and two processes compacting one store lose nothing.

use std::collections::BTreeMap;

use crate::common::{fixture, hex_of};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, ChangeHash, ReadDoc, ROOT};
use proptest::prelude::*;
use serde_json::Value;
use tandem_core::persistence::{load_document, should_compact, ChunkLedger, SavePlan};
use tandem_core::{ChunkKind, DocumentId, StorageKey};

fn tree_chunks(files: &[Value]) -> Vec<(StorageKey, Vec<u8>)> {
    files
        .iter()
        .filter(|f| f.get("hex").is_some())
        .map(|f| {
            let key = StorageKey::new(
                f["storageKey"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap()),
            );
            (key, hex_of(&f["hex"]))
        })
        .collect()
}

#[test]
fn captured_trees_load_at_their_heads() {
    let nodefs = fixture("storage_nodefs.json");
    let mut checked = 0;
    for (name, scenario) in nodefs["scenarios"].as_object().unwrap() {
        let Some(steps) = scenario["steps"].as_array() else {
            continue;
        };
        for step in steps {
            let (Some(tree), Some(heads)) = (step["tree"].as_array(), step["hexHeads"].as_array())
            else {
                continue;
            };
            let heads: Vec<ChangeHash> = heads
                .iter()
                .map(|h| h.as_str().unwrap().parse().unwrap())
                .collect();
            let id: DocumentId = scenario["docId"].as_str().unwrap().parse().unwrap();
            let chunks = tree_chunks(tree);
            let content_chunks = chunks.iter().filter(|(k, _)| k.parts().len() == 3).count();
            let loaded = load_document(&id, chunks);
            assert!(loaded.corrupt.is_empty(), "{name}");
            assert_eq!(
                loaded.document.expect("a document").get_heads(),
                heads,
                "{name}: {}",
                step["step"]
            );
            assert_eq!(loaded.ledger.saved_heads(), &heads[..]);
            assert_eq!(
                loaded.ledger.known_chunks().count(),
                content_chunks,
                "{name}: every chunk is known"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6);
}

#[test]
fn corrupt_chunks_are_reported_skipped_and_never_compacted_away() {
    let nodefs = fixture("storage_nodefs.json");
    let large = &nodefs["scenarios"]["large"];
    let id: DocumentId = large["docId"].as_str().unwrap().parse().unwrap();
    let step = large["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["tree"].is_array())
        .unwrap();
    let mut chunks = tree_chunks(step["tree"].as_array().unwrap());
    let good_heads = load_document(&id, chunks.clone())
        .document
        .unwrap()
        .get_heads();

    let (_, snapshot) = chunks
        .iter()
        .find(|(k, _)| k.parts()[1] == "snapshot")
        .unwrap()
        .clone();
    let truncated = StorageKey::new([id.as_str(), "incremental", "torn"]);
    let garbage = StorageKey::new([id.as_str(), "snapshot", "garbage"]);
    chunks.push((truncated.clone(), snapshot[..snapshot.len() / 2].to_vec()));
    chunks.push((garbage.clone(), b"not an automerge chunk".to_vec()));

    let loaded = load_document(&id, chunks);
    let mut corrupt: Vec<_> = loaded.corrupt.iter().map(|c| c.key.clone()).collect();
    corrupt.sort();
    assert_eq!(corrupt, vec![truncated.clone(), garbage.clone()]);
    let mut doc = loaded.document.expect("the good chunks still load");
    assert_eq!(doc.get_heads(), good_heads);

    let mut auto = AutoCommit::load(&doc.save()).unwrap();
    auto.put(ROOT, "after", "corruption").unwrap();
    doc = auto.document().clone();
    // Force a compaction by planning from a ledger that believes the incrementals outweigh it.
    let plan = plan_until_snapshot(loaded.ledger, &mut doc);
    assert!(
        !plan.obsolete.contains(&truncated) && !plan.obsolete.contains(&garbage),
        "unmerged chunks stay"
    );
}

/// `len` letters that deflate poorly (a linear congruential sequence), to grow documents past
/// the compaction floor.
fn noise(seed: u64, len: usize) -> String {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + ((state >> 33) % 26) as u8)
        })
        .collect()
}

/// Adds changes until the ledger plans a snapshot, recording each incremental on the way.
fn plan_until_snapshot(mut ledger: ChunkLedger, doc: &mut Automerge) -> SavePlan {
    for i in 0..1000 {
        let plan = ledger.plan_save(doc).expect("new heads to save");
        if plan.kind == ChunkKind::Snapshot {
            return plan;
        }
        ledger.record_saved(&plan);
        let mut auto = AutoCommit::load(&doc.save()).unwrap();
        auto.put(ROOT, format!("k{i}"), "x".repeat(200) + &i.to_string())
            .unwrap();
        *doc = auto.document().clone();
    }
    panic!("never compacted");
}

/// JS's own decisions, from the sizes in its per-change log: for each save, the snapshot and
/// incremental bytes known before it, and whether it wrote a new snapshot.
#[test]
fn the_compaction_rule_decides_as_js_did() {
    let nodefs = fixture("storage_nodefs.json");
    let log = nodefs["scenarios"]["large"]["perChangeLog"]
        .as_array()
        .unwrap();
    let totals = |entry: &Value| {
        let files = entry["files"].as_array().unwrap();
        let sum = |kind: &str| -> usize {
            files
                .iter()
                .filter(|f| f["path"].as_str().unwrap().contains(kind))
                .map(|f| f["size"].as_u64().unwrap() as usize)
                .sum()
        };
        let snapshot_name = files
            .iter()
            .find(|f| f["path"].as_str().unwrap().contains("/snapshot/"))
            .map(|f| f["path"].clone());
        (sum("/snapshot/"), sum("/incremental/"), snapshot_name)
    };
    let (mut compactions, mut incrementals) = (0, 0);
    for pair in log.windows(2) {
        let (snapshot_bytes, incremental_bytes, before) = totals(&pair[0]);
        let (_, _, after) = totals(&pair[1]);
        let js_compacted = before != after;
        assert_eq!(
            should_compact(snapshot_bytes, incremental_bytes, true),
            js_compacted,
            "after change {}: snapshot {snapshot_bytes} B, incrementals {incremental_bytes} B",
            pair[1]["afterChange"]
        );
        if js_compacted {
            compactions += 1
        } else {
            incrementals += 1
        }
    }
    assert!(
        compactions >= 1 && incrementals >= 5,
        "the log exercises both decisions"
    );
}

#[test]
fn save_plans_follow_the_document() {
    let id = DocumentId::random();
    let mut store: BTreeMap<StorageKey, Vec<u8>> = BTreeMap::new();
    let mut ledger = ChunkLedger::new(id.clone());
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "title", "small").unwrap();
    let apply = |plan: &SavePlan, store: &mut BTreeMap<StorageKey, Vec<u8>>| {
        store.insert(plan.key.clone(), plan.bytes.clone());
        for key in &plan.obsolete {
            store.remove(key);
        }
    };

    // A new document: a snapshot named by its heads.
    let plan = ledger.plan_save(doc.document()).expect("something to save");
    assert_eq!(plan.kind, ChunkKind::Snapshot);
    assert_eq!(
        plan.key,
        tandem_core::ChunkKey::snapshot(id.clone(), &doc.get_heads()).to_storage_key()
    );
    apply(&plan, &mut store);
    ledger.record_saved(&plan);
    assert_eq!(
        ledger.plan_save(doc.document()),
        None,
        "nothing new, nothing to save"
    );

    // Small documents stay one snapshot, replaced each time.
    doc.put(ROOT, "n", 1).unwrap();
    let plan = ledger.plan_save(doc.document()).unwrap();
    assert_eq!((plan.kind, plan.obsolete.len()), (ChunkKind::Snapshot, 1));
    apply(&plan, &mut store);
    ledger.record_saved(&plan);
    assert_eq!(store.len(), 1);

    // Past 1 KiB, changes go to incrementals holding exactly the changes since the last save.
    doc.put(ROOT, "blob", noise(1, 3000)).unwrap();
    let plan = ledger.plan_save(doc.document()).unwrap();
    apply(&plan, &mut store);
    ledger.record_saved(&plan);
    let mut kinds = Vec::new();
    for i in 0..40 {
        let before = doc.get_heads();
        doc.put(ROOT, format!("k{i}"), i).unwrap();
        let plan = ledger.plan_save(doc.document()).unwrap();
        if plan.kind == ChunkKind::Incremental {
            assert_eq!(plan.bytes, doc.document().save_after(&before));
            assert!(plan.obsolete.is_empty());
        } else {
            assert!(
                plan.obsolete.iter().all(|k| store.contains_key(k)),
                "only known chunks are removed"
            );
        }
        kinds.push(plan.kind);
        apply(&plan, &mut store);
        ledger.record_saved(&plan);
        let reloaded = load_document(&id, store.clone().into_iter().collect());
        assert_eq!(
            reloaded.document.unwrap().get_heads(),
            doc.get_heads(),
            "storage holds every change"
        );
    }
    assert!(
        kinds.contains(&ChunkKind::Incremental) && kinds.contains(&ChunkKind::Snapshot),
        "{kinds:?}"
    );
}

/// One process: its document and what it knows of the shared store.
struct Process {
    doc: AutoCommit,
    ledger: ChunkLedger,
    pending: Option<SavePlan>,
    /// What the pending plan's key held before its write (a crash may undo the write).
    replaced: Option<Vec<u8>>,
    /// The other process read the store while this write was pending: the write was visible,
    /// so (renamed into place) it survives this process being killed.
    seen: bool,
}

impl Process {
    /// Starts again from what the store holds now, keeping its actor.
    fn restart(&mut self, id: &DocumentId, store: &BTreeMap<StorageKey, Vec<u8>>) {
        let loaded = load_document(id, store.clone().into_iter().collect());
        let actor = self.doc.get_actor().clone();
        self.doc = match loaded.document {
            Some(doc) => AutoCommit::load(&doc.save()).unwrap().with_actor(actor),
            None => AutoCommit::new().with_actor(actor),
        };
        self.ledger = loaded.ledger;
    }
}

#[derive(Debug, Clone)]
enum Step {
    Edit(usize, u16),
    /// Plan a save and write its chunk (but not yet remove the obsolete ones).
    Write(usize),
    /// Remove the obsolete chunks of the written plan and record it.
    Finish(usize),
    /// Restart from what the store holds now.
    Reload(usize),
    /// Killed before its written chunk was durable: the write is lost, or (a new file) torn at
    /// the given fraction; then a restart from what the store holds.
    Crash(usize, u16),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, any::<u16>()).prop_map(|(p, v)| Step::Edit(p, v)),
        2 => (0..2usize).prop_map(Step::Write),
        2 => (0..2usize).prop_map(Step::Finish),
        1 => (0..2usize).prop_map(Step::Reload),
        1 => (0..2usize, any::<u16>()).prop_map(|(p, cut)| Step::Crash(p, cut)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Two processes edit one document and save, compact, reload and crash against one store,
    /// in any interleaving; afterwards the store holds every change either of them wrote and did
    /// not lose to its own crash before the write was durable.
    #[test]
    fn two_processes_compacting_one_store_lose_nothing(steps in prop::collection::vec(arb_step(), 1..60)) {
        let id = DocumentId::from_bytes(&[7; 16]);
        let mut store: BTreeMap<StorageKey, Vec<u8>> = BTreeMap::new();
        let mut processes: Vec<Process> = (0..2u8)
            .map(|p| {
                let mut doc = AutoCommit::new().with_actor(automerge::ActorId::from(vec![p + 1; 16]));
                // Over 1 KiB compressed, so both incrementals and compactions happen.
                doc.put(ROOT, "blob", noise(u64::from(p), 3000)).unwrap();
                Process { doc, ledger: ChunkLedger::new(id.clone()), pending: None, replaced: None, seen: false }
            })
            .collect();
        // Heads each written plan stands for, with the process and plan that wrote them: a crash
        // takes back only what its own unfinished write promised.
        let mut must_survive: Vec<(usize, ChangeHash)> = Vec::new();
        for step in steps {
            match step {
                Step::Edit(p, v) => {
                    let doc = &mut processes[p].doc;
                    doc.put(ROOT, format!("p{p}"), i64::from(v)).unwrap();
                    doc.put(ROOT, format!("t{p}{v}"), noise(u64::from(v), 200)).unwrap();
                }
                Step::Write(p) => {
                    let process = &mut processes[p];
                    if process.pending.is_none() {
                        if let Some(plan) = process.ledger.plan_save(process.doc.document()) {
                            process.seen = false;
                            process.replaced = store.insert(plan.key.clone(), plan.bytes.clone());
                            must_survive.extend(plan.heads.iter().map(|h| (p + 2, *h)));
                            process.pending = Some(plan);
                        }
                    }
                }
                Step::Finish(p) => {
                    let process = &mut processes[p];
                    if let Some(plan) = process.pending.take() {
                        for key in &plan.obsolete {
                            store.remove(key);
                        }
                        process.ledger.record_saved(&plan);
                        // Durable now: no crash of this process takes it back.
                        for entry in must_survive.iter_mut().filter(|(owner, _)| *owner == p + 2) {
                            entry.0 = 0;
                        }
                    }
                }
                Step::Crash(p, cut) => {
                    processes[1 - p].seen = true;
                    let process = &mut processes[p];
                    if let Some(plan) = process.pending.take().filter(|_| !process.seen) {
                        must_survive.retain(|(owner, _)| *owner != p + 2);
                        match process.replaced.take() {
                            // Replacing is atomic (rename): the old chunk is back.
                            Some(before) => {
                                store.insert(plan.key.clone(), before);
                            }
                            None if cut % 2 == 0 => {
                                store.remove(&plan.key);
                            }
                            None => {
                                let kept = plan.bytes.len() * usize::from(cut) / 65536;
                                store.insert(plan.key.clone(), plan.bytes[..kept].to_vec());
                            }
                        }
                    }
                    process.restart(&id, &store);
                }
                Step::Reload(p) => {
                    processes[1 - p].seen = true;
                    let process = &mut processes[p];
                    // A restart loses what was never written; a half-finished save stays half done.
                    process.pending = None;
                    process.restart(&id, &store);
                }
            }
        }
        let loaded = load_document(&id, store.into_iter().collect());
        let Some(doc) = loaded.document else {
            prop_assert!(must_survive.is_empty(), "saves were made but nothing loads");
            return Ok(());
        };
        for (_, head) in must_survive {
            prop_assert!(doc.get_change_by_hash(&head).is_some(), "saved change {head} was lost");
        }
    }
}

/// A save a peer waits on writes an incremental, the cheapest durable write, even where the
/// compaction rule asks for a snapshot; the next ordinary save compacts, new changes or not, and
/// a document written to without pause still compacts once its incrementals outgrow the rule.
#[test]
fn quick_saves_write_incrementals_and_leave_the_compaction_to_the_next_save() {
    let id = DocumentId::random();
    let mut doc = Automerge::new();
    let mut ledger = ChunkLedger::new(id.clone());
    let mut store: BTreeMap<StorageKey, Vec<u8>> = BTreeMap::new();
    let edit = |doc: &mut Automerge, i: i64| {
        let mut tx = doc.transaction();
        tx.put(ROOT, "n", i).unwrap();
        tx.commit();
    };
    let carry_out =
        |ledger: &mut ChunkLedger, store: &mut BTreeMap<StorageKey, Vec<u8>>, plan: SavePlan| {
            store.insert(plan.key.clone(), plan.bytes.clone());
            for key in &plan.obsolete {
                store.remove(key);
            }
            ledger.record_saved(&plan);
        };

    edit(&mut doc, 0);
    let first = ledger.plan_quick_save(&doc).unwrap();
    assert_eq!(
        first.kind,
        ChunkKind::Snapshot,
        "a first save is a snapshot, as in JS"
    );
    carry_out(&mut ledger, &mut store, first);

    // A small document: the rule asks for a snapshot on every save.
    for i in 1..=10 {
        edit(&mut doc, i);
        let plan = ledger.plan_quick_save(&doc).unwrap();
        assert_eq!(plan.kind, ChunkKind::Incremental, "quick save {i}");
        carry_out(&mut ledger, &mut store, plan);
    }
    assert!(ledger.compaction_pending());
    let quiet = ledger.plan_save(&doc).expect("the pending compaction");
    assert_eq!(quiet.kind, ChunkKind::Snapshot);
    assert_eq!(quiet.obsolete.len(), 11);
    carry_out(&mut ledger, &mut store, quiet);
    assert!(!ledger.compaction_pending());
    assert!(ledger.plan_save(&doc).is_none(), "nothing left to do");

    // Written to without pause: compactions come by themselves, and the chunks stay few.
    let mut compactions = 0;
    let mut most_chunks = 0;
    for i in 11..400 {
        edit(&mut doc, i);
        let plan = ledger.plan_quick_save(&doc).unwrap();
        compactions += usize::from(plan.kind == ChunkKind::Snapshot);
        carry_out(&mut ledger, &mut store, plan);
        most_chunks = most_chunks.max(store.len());
    }
    assert!(compactions >= 2, "{compactions} compactions");
    assert!(most_chunks < 100, "{most_chunks} chunks at once");
    let loaded = load_document(&id, store.into_iter().collect());
    assert_eq!(loaded.document.unwrap().get_heads(), doc.get_heads());
}
