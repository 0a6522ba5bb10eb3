//! A small document gives back automerge's room to grow once it is loaded, or saved with nothing
//! left to save; a large one keeps it. Measured with a counting allocator, so this file holds one test:
//! another running beside it would move the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT};
use tandem_core::document::SaveId;
use tandem_core::document::{
    DocumentActor, DocumentConfig, DocumentEffect, DocumentInput, SaveOutcome, Start,
};
use tandem_core::persistence::{load_document, take_in_stored, SavePlan};
use tandem_core::{ChunkKey, DocumentId, PeerId, SessionId};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only the live bytes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// A document shaped like a small app's: a few fields, a list, some text; `text_len` sets the
/// text's length (and so the document's size).
fn document(text_len: usize) -> Automerge {
    let mut doc = Automerge::new();
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(ROOT, "title", "notes")?;
        tx.put(ROOT, "count", 3)?;
        let list = tx.put_object(ROOT, "items", ObjType::List)?;
        for i in 0..5 {
            tx.insert(&list, i, i as i64)?;
        }
        let text = tx.put_object(ROOT, "body", ObjType::Text)?;
        // Letters that do not repeat in a pattern, so that the stored text does not compress.
        let mut state = 0x2545_f491_u32;
        let words: String = (0..text_len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                char::from(b'a' + (state % 26) as u8)
            })
            .collect();
        tx.splice_text(&text, 0, 0, &words)?;
        Ok(())
    })
    .expect("a valid transaction");
    doc
}

/// A document created here, in a repo with storage, and its actor; saves are carried out as the
/// driver would, without a store.
struct Created {
    actor: DocumentActor,
    doc: Automerge,
    now: Instant,
}

impl Created {
    fn new(mut doc: Automerge) -> Self {
        let mut config = DocumentConfig::new(PeerId::from("here"), SessionId::random());
        config.storage = true;
        let now = Instant::now();
        let mut actor = DocumentActor::new(
            Arc::new(config),
            DocumentId::random(),
            Start::Created,
            Vec::new(),
            &doc,
            now,
        );
        actor.start(now, &mut doc);
        Created { actor, doc, now }
    }

    /// Tells the actor of a local change; the live bytes that freed.
    fn local_change(&mut self) -> isize {
        measured(|| {
            self.actor
                .handle(self.now, DocumentInput::LocalChange, &mut self.doc);
        })
    }

    /// Runs the actor's next timer: the save it starts, if any, and the live bytes that freed.
    fn timeout(&mut self) -> (Option<(SaveId, Option<SavePlan>)>, isize) {
        self.now = self.actor.next_timeout().expect("a timer is set");
        let mut effects = Vec::new();
        let freed = measured(|| {
            effects = self
                .actor
                .handle(self.now, DocumentInput::Timeout, &mut self.doc);
        });
        let save = effects.into_iter().find_map(|effect| match effect {
            DocumentEffect::Save { save, job } => Some((save, job.plan)),
            _ => None,
        });
        (save, freed)
    }

    /// Lands `save` as stored: the live bytes that freed, beyond the saved chunk's own.
    fn land(&mut self, (save, plan): (SaveId, Option<SavePlan>)) -> isize {
        let chunk = plan.as_ref().map_or(0, |plan| plan.bytes.capacity()) as isize;
        let outcome = SaveOutcome {
            chunk_stored: true,
            saved_plan: plan,
            unsaved_sync_states: BTreeMap::new(),
            result: Ok(()),
            snapshot_refused: None,
            retry_after: Duration::ZERO,
        };
        let freed = measured(|| {
            self.actor.handle(
                self.now,
                DocumentInput::Saved { save, outcome },
                &mut self.doc,
            );
        });
        freed - chunk
    }
}

/// The live bytes `f` freed.
fn measured(f: impl FnOnce()) -> isize {
    let before = live();
    f();
    before - live()
}

/// How many live bytes the landing of `doc`'s first save freed, beyond the saved chunk's own.
fn freed_by_the_save(doc: Automerge) -> isize {
    let mut created = Created::new(doc);
    created.local_change();
    let (save, _) = created.timeout();
    let freed = created.land(save.expect("the change is saved"));
    // Nothing is left to save.
    assert!(created.actor.next_timeout().is_none());
    freed
}

/// An actor finding `stored` in storage (its one snapshot, read and merged as the driver does):
/// how many live bytes taking in the load freed.
fn freed_by_the_load(stored: Automerge) -> isize {
    let id = DocumentId::random();
    let key = ChunkKey::snapshot(id.clone(), &stored.get_heads()).to_storage_key();
    let chunks = vec![(key, stored.save())];
    drop(stored);
    let config = DocumentConfig::new(PeerId::from("here"), SessionId::random());
    let now = Instant::now();
    let mut doc = Automerge::new();
    let mut actor = DocumentActor::new(
        Arc::new(DocumentConfig {
            storage: true,
            ..config
        }),
        id.clone(),
        Start::Load {
            wanted_locally: true,
            networks_settling: false,
        },
        Vec::new(),
        &doc,
        now,
    );
    let effects = actor.start(now, &mut doc);
    assert!(effects.iter().any(|e| matches!(e, DocumentEffect::Load)));
    let loaded = take_in_stored(&mut doc, load_document(&id, chunks));
    let before = live();
    actor.handle(now, DocumentInput::Loaded(loaded), &mut doc);
    let after = live();
    assert!(!doc.get_heads().is_empty(), "the document loaded");
    before - after
}

#[test]
fn a_small_document_is_compacted_once_loaded_or_saved_and_a_large_one_is_not() {
    // automerge's room to grow in a document this small is about 8 KiB.
    let freed = freed_by_the_save(document(200));
    assert!(
        freed >= 4096,
        "a small saved document gave back {freed} bytes"
    );
    let freed = freed_by_the_load(document(200));
    assert!(
        freed >= 4096,
        "a small loaded document gave back {freed} bytes"
    );

    // A change made while the first save runs leaves something to save: the document is
    // compacted once the second save lands.
    let mut created = Created::new(document(200));
    created.local_change();
    let (first, _) = created.timeout();
    created
        .doc
        .transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "count", 4))
        .expect("a valid transaction");
    created.local_change();
    let freed = created.land(first.expect("the change is saved"));
    assert!(
        freed.abs() < 1024,
        "a save with more to come gave back {freed} bytes"
    );
    let (second, _) = created.timeout();
    let freed = created.land(second.expect("the second change is saved"));
    assert!(freed >= 4096, "the second save gave back {freed} bytes");

    // Past 64 KiB stored, the document keeps its room: a copy would cost more than it saves.
    let large = document(300_000);
    assert!(
        large.save().len() > 64 * 1024,
        "the large document is large"
    );
    let freed = freed_by_the_save(large.clone());
    assert!(
        freed.abs() < 1024,
        "a large saved document gave back {freed} bytes"
    );
    let freed = freed_by_the_load(large);
    assert!(
        freed.abs() < 1024,
        "a large loaded document gave back {freed} bytes"
    );
}
