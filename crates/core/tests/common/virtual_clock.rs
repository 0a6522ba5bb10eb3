//! Helpers of the tests that run nodes on the virtual clock (`tandem_core::testing`).

use automerge::transaction::Transactable;
use automerge::{Automerge, ReadDoc, ROOT};
use tandem_core::testing::Network;
use tandem_core::DocumentId;

/// A filling for a new document, or a change: `key` set to `value`.
pub fn doc_with(key: &'static str, value: i64) -> impl FnOnce(&mut Automerge) {
    move |doc| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, key, value)?;
            Ok(())
        })
        .expect("a fresh document takes a put");
    }
}

/// `key` of node `node`'s copy of `id`, if it holds the document and an integer there.
pub fn value(network: &mut Network, node: usize, id: &DocumentId, key: &str) -> Option<i64> {
    let document = network.node(node).document(id)?;
    let (value, _) = document.doc.get(ROOT, key).ok()??;
    value.as_i64()
}
