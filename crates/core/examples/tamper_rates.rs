//! How automerge 0.12 copes with changes a hostile peer can make, and what tandem's guard makes
//! of them: the figures in the README's "Changes automerge cannot take".
//!
//! `cargo run --release -p tandem-core --example tamper_rates -- [count]` flips one to three bits
//! in `tests/fixtures/untrusted/original.change` (after its checksum), fixes the checksum as any
//! peer can, applies the result to a small document, and counts what happens.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT};
use sha2::{Digest, Sha256};
use tandem_core::untrusted::{apply_untrusted, UntrustedError};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let original = include_bytes!("../tests/fixtures/untrusted/original.change");
    let base = small_document();
    // automerge's own panic messages would flood the terminal.
    panic::set_hook(Box::new(|_| {}));
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut state = 0x5eed_0001_u64;
    for _ in 0..count {
        let flips = 1 + next(&mut state) % 3;
        let mut bytes = original.to_vec();
        for _ in 0..flips {
            let at = 8 + (next(&mut state) as usize) % (bytes.len() - 8);
            bytes[at] ^= 1 << (next(&mut state) % 8);
        }
        let checksum = Sha256::digest(&bytes[8..]);
        bytes[4..8].copy_from_slice(&checksum[..4]);

        // automerge alone.
        let mut raw = base.clone();
        let alone = match panic::catch_unwind(AssertUnwindSafe(|| raw.load_incremental(&bytes))) {
            Err(_) => "automerge alone: panics",
            Ok(Err(_)) => "automerge alone: refuses",
            Ok(Ok(_)) if snapshot_loads(&raw) => "automerge alone: takes it, snapshot loads",
            Ok(Ok(_)) => "automerge alone: takes it, snapshot does not load",
        };
        *seen.entry(alone).or_default() += 1;

        // Through the guard.
        let mut guarded = base.clone();
        let through = match apply_untrusted(&mut guarded, |d| d.load_incremental(&bytes)) {
            Err(UntrustedError::Automerge(_)) => "guarded: refused by automerge",
            Err(UntrustedError::Panicked(_)) => "guarded: refused, automerge panicked",
            Err(UntrustedError::Unwritable(_)) => "guarded: refused, does not write back",
            Err(UntrustedError::OverQuota(_)) => "guarded: refused, over the quota (none set)",
            Ok(_) if snapshot_loads(&guarded) => "guarded: taken, snapshot loads",
            Ok(_) => "guarded: taken, snapshot does not load",
        };
        *seen.entry(through).or_default() += 1;
    }
    println!("{count} tampered changes");
    for (what, n) in seen {
        println!(
            "{what:<52} {n:>7}  {:6.2} %",
            100.0 * n as f64 / count as f64
        );
    }
}

fn small_document() -> Automerge {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "title", "ours")
        .expect("a put on a fresh document");
    let list = tx
        .put_object(ROOT, "items", ObjType::List)
        .expect("a list on a fresh document");
    for i in 0..5 {
        tx.insert(&list, i, i as i64)
            .expect("an insert into our list");
    }
    tx.commit();
    doc
}

fn snapshot_loads(doc: &Automerge) -> bool {
    matches!(
        panic::catch_unwind(AssertUnwindSafe(|| Automerge::load(&doc.save()))),
        Ok(Ok(loaded)) if loaded.get_heads() == doc.get_heads()
    )
}

/// xorshift64: the same run every time, without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
