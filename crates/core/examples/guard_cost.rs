//! What the untrusted-change guard costs as documents grow, against applying the same change
//! without it, measured in the same run.
//!
//! `cargo run --release -p tandem-core --example guard_cost` builds text documents of growing
//! size (one writer typing), makes one small concurrent change from another writer, and times
//! `apply_changes` on a copy of the document (the copy made beforehand, so only the apply is
//! timed) against `apply_untrusted` (which copies, applies and checks the write-back). The guard's
//! copy grows with the document; automerge's own apply of a remote change into a long text grows
//! faster.

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, Change, ObjType, ReadDoc, ROOT};
use tandem_core::untrusted::apply_untrusted;

const ROUNDS: u32 = 5;

fn main() {
    println!("changes x ops each | plain apply | guarded apply | ratio | copy alone");
    for (changes, ops_each) in [
        (1_000, 10),
        (10_000, 1),
        (10_000, 10),
        (50_000, 1),
        (2_000, 500),
    ] {
        let (doc, change) = document_and_change(changes, ops_each);
        let mut copies: Vec<Automerge> = (0..ROUNDS).map(|_| doc.clone()).collect();
        let start = Instant::now();
        for copy in &mut copies {
            copy.apply_changes([change.clone()])
                .expect("an honest change applies");
        }
        let plain = start.elapsed() / ROUNDS;
        let mut guarded = Duration::ZERO;
        for _ in 0..ROUNDS {
            let mut target = doc.clone();
            let start = Instant::now();
            apply_untrusted(&mut target, |d| d.apply_changes([change.clone()]))
                .expect("an honest change passes the guard");
            guarded += start.elapsed();
        }
        let guarded = guarded / ROUNDS;
        let start = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::black_box(doc.clone());
        }
        let copy = start.elapsed() / ROUNDS;
        println!(
            "{changes} x {ops_each} | {plain:.2?} | {guarded:.2?} | {:.2} | {copy:.2?}",
            guarded.as_secs_f64() / plain.as_secs_f64()
        );
    }
}

/// A text typed by one writer in `changes` commits of `ops_each` characters, and one character
/// inserted near its start by another writer.
fn document_and_change(changes: usize, ops_each: usize) -> (Automerge, Change) {
    let mut typing = AutoCommit::new();
    let text = typing
        .put_object(ROOT, "text", ObjType::Text)
        .expect("a fresh document takes a text");
    typing.commit();
    let mut len = 0;
    for i in 0..changes {
        let letter = char::from(b'a' + (i % 26) as u8);
        let chunk: String = std::iter::repeat(letter).take(ops_each).collect();
        typing
            .splice_text(&text, len, 0, &chunk)
            .expect("typing at the end");
        len += ops_each;
        typing.commit();
    }
    let doc = typing.document().clone();
    let mut other = doc.fork();
    let (_, text) = other
        .get(ROOT, "text")
        .expect("the text is there")
        .expect("the text is there");
    let mut tx = other.transaction();
    tx.splice_text(&text, 5, 0, "X").expect("an insert");
    tx.commit();
    let change = other
        .get_last_local_change()
        .expect("the change just made")
        .clone();
    (doc, change)
}
