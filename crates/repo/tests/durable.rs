//! Durable acknowledgement: a server with storage acknowledges a peer's change only once it is
//! saved, while other peers hear of the change at once.

mod common;

use std::sync::Arc;

use automerge::{transaction::Transactable, ROOT};
use common::{link, wait_for_heads, PATIENCE};
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

/// Waits until `repo` no longer counts `peer` among its connected peers.
async fn wait_gone(repo: &Repo, peer: &tandem_core::PeerId) {
    let mut peers = repo.peer_changes();
    tokio::time::timeout(PATIENCE, peers.wait_for(|now| !now.contains_key(peer)))
        .await
        .expect("the peer never left")
        .unwrap();
}

/// A writer that reconnects while the server's save of its change still waits must not hear,
/// in the server's answer to its greeting, heads that acknowledge the change: they are not
/// durable yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_writer_is_not_acknowledged_before_the_save() {
    let Setup {
        storage,
        server,
        server_storage,
        writer,
        reader,
        links: [writer_link, _reader_link],
    } = Setup::start().await;
    // Made and saved before the gate shuts: only the change below waits for the disk.
    let other = server.create_empty().await.unwrap();
    server.flush().await.unwrap();
    let (doc, _) = writer.create_with(|tx| tx.put(ROOT, "n", 0)).await.unwrap();
    wait_acknowledged(&doc, &server_storage).await;
    let seen = reader.find(doc.url()).await.unwrap();
    wait_for_heads(&seen, &doc.heads().unwrap()).await;

    storage.shut();
    doc.change(|tx| tx.put(ROOT, "n", 1)).unwrap().unwrap();
    wait_for_heads(&seen, &doc.heads().unwrap()).await;
    tokio::time::timeout(PATIENCE, storage.wait_for_waiting_saves(1))
        .await
        .expect("the server never tried to save the change");

    writer_link.cut();
    wait_gone(&server, writer.peer_id()).await;
    wait_gone(&writer, server.peer_id()).await;
    writer_link.restore();
    common::wait_connected(&writer, &server).await;
    // The writer greets the server on the document. To know the server has answered that
    // greeting: the writer's ephemeral message, sent after it, is relayed to the reader by the
    // same server worker, after the answer. (Broadcast until one arrives: until the writer's
    // worker has heard of the new connection, a broadcast reaches nobody.)
    let mut relayed = Box::pin(seen.ephemeral_messages());
    tokio::time::timeout(PATIENCE, async {
        loop {
            doc.broadcast(&"after the greeting").await.unwrap();
            let wait = std::time::Duration::from_millis(50);
            if tokio::time::timeout(wait, relayed.next()).await.is_ok() {
                return;
            }
        }
    })
    .await
    .expect("no ephemeral message was relayed");
    // Whatever the server sent the writer came before its answer to a find of another document
    // on the same link, and the writer's worker takes it in before a flush queued after it.
    writer.find(other.url()).await.unwrap();
    writer
        .flush_documents([doc.document_id().clone()])
        .await
        .unwrap();
    assert!(
        !acknowledged(&doc, &server_storage),
        "acknowledged while the save still waits"
    );

    storage.reopen();
    wait_acknowledged(&doc, &server_storage).await;
    for repo in [writer, reader, server] {
        repo.shutdown().await;
    }
}

/// A writer that changes the document again while the save of its last change runs hears that
/// change acknowledged as soon as that save lands, not only once it stops writing: a writer
/// faster than the disk is still answered, save by save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_faster_than_the_disk_is_answered_save_by_save() {
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
    let at_server = server.find(doc.url()).await.unwrap();

    // The first change's save starts, and waits.
    storage.shut();
    doc.change(|tx| tx.put(ROOT, "n", 1)).unwrap().unwrap();
    let first = doc.heads().unwrap();
    tokio::time::timeout(PATIENCE, storage.wait_for_waiting_saves(1))
        .await
        .expect("the server never tried to save the first change");
    // The second change arrives while it waits.
    doc.change(|tx| tx.put(ROOT, "n", 2)).unwrap().unwrap();
    let second = doc.heads().unwrap();
    wait_for_heads(&at_server, &second).await;

    // The first save lands; the second waits at the gate.
    storage.let_one_through();
    let mut events = Box::pin(doc.remote_heads_changes());
    tokio::time::timeout(PATIENCE, async {
        while doc.remote_heads(&server_storage).map(|e| e.heads) != Some(first.clone()) {
            events.next().await;
        }
    })
    .await
    .expect("the first change was not acknowledged once its save landed");
    tokio::time::timeout(PATIENCE, storage.wait_for_waiting_saves(1))
        .await
        .expect("the server never tried to save the second change");
    assert!(!acknowledged(&doc, &server_storage));

    storage.reopen();
    wait_acknowledged(&doc, &server_storage).await;
    for repo in [writer, reader, server] {
        repo.shutdown().await;
    }
}
