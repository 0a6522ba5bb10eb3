//! A large document arriving from a peer is merged on a fork: the handle's document stays
//! readable and writable meanwhile, and what the application writes meanwhile is kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::*;
use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ROOT};
use tandem_repo::Repo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_a_large_document_is_merged_are_kept() {
    let (big_side, small_side, _link) = connected(Repo::builder(), Repo::builder()).await;
    // Both sides hold the document; one side then writes a lot at once.
    let (at_big, ()) = big_side
        .create_with(|tx| {
            tx.put_object(ROOT, "text", ObjType::Text).unwrap();
            tx.put_object(ROOT, "written", ObjType::List).unwrap();
        })
        .await
        .unwrap();
    let at_small = small_side.find(at_big.url()).await.unwrap();
    wait_for_heads(&at_small, &at_big.heads().unwrap()).await;

    let merging = Arc::new(AtomicBool::new(true));
    let writer = {
        let at_small = at_small.clone();
        let merging = merging.clone();
        std::thread::spawn(move || {
            let mut written = 0i64;
            while merging.load(Ordering::SeqCst) {
                written += 1;
                at_small
                    .change(|tx| {
                        let list = tx.get(ROOT, "written").unwrap().unwrap().1;
                        let end = tx.length(&list);
                        tx.insert(&list, end, written).unwrap();
                    })
                    .unwrap();
            }
            written
        })
    };
    at_big
        .change(|tx| {
            let text = tx.get(ROOT, "text").unwrap().unwrap().1;
            // Letters that do not compress: the sync message is large, not a run-length code.
            let mut seed = 7u32;
            let letters: String = (0..200_000)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    char::from(b'a' + (seed >> 16) as u8 % 26)
                })
                .collect();
            tx.splice_text(&text, 0, 0, &letters).unwrap();
        })
        .unwrap();
    let big_heads = at_big.heads().unwrap();
    let mut changes = Box::pin(at_small.changes());
    tokio::time::timeout(PATIENCE, async {
        while !at_small
            .with_doc(|doc| {
                big_heads
                    .iter()
                    .all(|h| doc.get_change_by_hash(h).is_some())
            })
            .unwrap()
        {
            futures::StreamExt::next(&mut changes).await;
        }
    })
    .await
    .expect("the large change never arrived");
    merging.store(false, Ordering::SeqCst);
    let written = writer.join().unwrap();

    let (length, kept) = at_small
        .with_doc(|doc| {
            let text = doc.get(ROOT, "text").unwrap().unwrap().1;
            let list = doc.get(ROOT, "written").unwrap().unwrap().1;
            (doc.length(&text), doc.length(&list) as i64)
        })
        .unwrap();
    assert_eq!(length, 200_000);
    assert_eq!(kept, written, "changes made during the merge were lost");
    let heads = wait_converged(&[at_big.clone(), at_small.clone()]).await;
    assert!(!heads.is_empty());
    big_side.shutdown().await;
    small_side.shutdown().await;
}
