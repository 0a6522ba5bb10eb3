//! Durable acknowledgement: a server with storage acknowledges a peer's change only once it is
//! saved, while other peers hear of the change at once.

use std::sync::Arc;

use crate::common::{link, wait_for_heads, PATIENCE};
use automerge::{transaction::Transactable, ROOT};
use futures::StreamExt;
use tandem_repo::network::memory::Link;
use tandem_repo::{AskOnly, DocHandle, Repo};
use tandem_storage_mem::testing::GatedStorage;

/// Whether `doc` has heard that `storage` holds its current heads.
fn acknowledged(doc: &DocHandle, storage: &tandem_core::StorageId) -> bool {
    doc.remote_heads(storage).map(|e| e.heads) == Some(doc.heads().unwrap())
}

async fn wait_acknowledged(doc: &DocHandle, storage: &tandem_core::StorageId) {
    let mut events = Box::pin(doc.remote_heads_changes());
    tokio::time::timeout(PATIENCE, async {
        while !acknowledged(doc, storage) {
            events.next().await;
        }
    })
    .await
    .expect("never acknowledged");
}

/// A server with durable acknowledgement on gated storage, and a writer and a reader linked to
/// it (links in that order).
struct Setup {
    storage: GatedStorage,
    server: Repo,
    server_storage: tandem_core::StorageId,
    writer: Repo,
    reader: Repo,
    links: [Link; 2],
}

impl Setup {
    async fn start() -> Setup {
        let storage = GatedStorage::open();
        let server = Repo::builder()
            .share_policy(AskOnly)
            .shared_storage(Arc::new(storage.clone()))
            .durable_acknowledgement(true)
            .start()
            .await
            .unwrap();
        let server_storage = server.storage_id().unwrap().clone();
        let writer = Repo::builder().start().await.unwrap();
        let reader = Repo::builder().start().await.unwrap();
        let links = [link(&writer, &server).await, link(&reader, &server).await];
        Setup {
            storage,
            server,
            server_storage,
            writer,
            reader,
            links,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_waits_for_the_save_and_other_peers_do_not() {
    let Setup {
        storage,
        server,
        server_storage,
        writer,
        reader,
        links: _links,
    } = Setup::start().await;

    let (doc, _) = writer.create_with(|tx| tx.put(ROOT, "n", 0)).await.unwrap();
    wait_acknowledged(&doc, &server_storage).await;
    let seen = reader.find(doc.url()).await.unwrap();
    wait_for_heads(&seen, &doc.heads().unwrap()).await;

    // The disk stalls; the writer changes the document.
    storage.shut();
    doc.change(|tx| tx.put(ROOT, "n", 1)).unwrap().unwrap();
    tokio::time::timeout(PATIENCE, storage.wait_for_waiting_saves(1))
        .await
        .expect("the server never tried to save the change");
    // The reader has it while the save waits...
    wait_for_heads(&seen, &doc.heads().unwrap()).await;
    // ...and the writer has no acknowledgement: the save has not happened.
    assert!(!acknowledged(&doc, &server_storage));

    storage.reopen();
    wait_acknowledged(&doc, &server_storage).await;
    for repo in [writer, reader, server] {
        repo.shutdown().await;
    }
}
