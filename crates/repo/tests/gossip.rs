//! Remote-heads gossip (docs/protocol.md#remote-heads-gossip): a client learns, through a server,
//! which heads another client's storage holds — a "saved on the other device" indicator.

use crate::common::{link, wait_for_heads, PATIENCE};
use automerge::{transaction::Transactable, ChangeHash, ROOT};
use futures::StreamExt;
use tandem_repo::{AskOnly, DocHandle, Repo};
use tandem_storage_mem::MemoryStorage;

/// Waits until `handle` reports `heads` for `storage`, through its event stream.
async fn wait_for_remote_heads(
    handle: &DocHandle,
    storage: &tandem_core::StorageId,
    heads: &[ChangeHash],
) {
    let mut events = Box::pin(handle.remote_heads_changes());
    let reached = tokio::time::timeout(PATIENCE, async {
        loop {
            if handle.remote_heads(storage).map(|e| e.heads).as_deref() == Some(heads) {
                return;
            }
            if events.next().await.is_none() {
                return;
            }
        }
    })
    .await;
    assert!(
        reached.is_ok() && handle.remote_heads(storage).map(|e| e.heads).as_deref() == Some(heads),
        "never heard that {storage} has {heads:?}; knows {:?}",
        handle.remote_heads(storage)
    );
}

/// A writer with storage, a server that announces nothing, and a reader; the reader subscribes
/// to the writer's storage id; the reader takes part in gossip only if `gossip_on_reader`.
async fn three(gossip_on_reader: bool) -> (Repo, Repo, Repo) {
    let writer = Repo::builder()
        .storage(MemoryStorage::new())
        .remote_heads_gossip(true)
        .start()
        .await
        .unwrap();
    let server = Repo::builder()
        .share_policy(AskOnly)
        .remote_heads_gossip(true)
        .start()
        .await
        .unwrap();
    let reader = Repo::builder()
        .remote_heads_gossip(gossip_on_reader)
        .start()
        .await
        .unwrap();
    let _ = link(&writer, &server).await;
    let _ = link(&reader, &server).await;
    (writer, server, reader)
}

/// The writer creates a document; the server fetches it; the reader (subscribed to the writer's
/// storage) finds it through the server. Returns the writer's handle and the reader's.
async fn shared_draft(
    (writer, server, reader): (&Repo, &Repo, &Repo),
) -> (DocHandle, DocHandle, tandem_core::StorageId) {
    let writer_storage = writer.storage_id().unwrap().clone();
    reader.subscribe_to_remotes([writer_storage.clone()]);
    let (doc, _) = writer
        .create_with(|tx| tx.put(ROOT, "title", "draft"))
        .await
        .unwrap();
    let on_server = server.find(doc.url()).await.unwrap();
    wait_for_heads(&on_server, &doc.heads().unwrap()).await;
    let seen = reader.find(doc.url()).await.unwrap();
    wait_for_heads(&seen, &doc.heads().unwrap()).await;
    (doc, seen, writer_storage)
}

#[tokio::test]
async fn a_subscriber_learns_the_heads_of_a_storage_it_never_meets() {
    let (writer, server, reader) = three(true).await;
    let (doc, seen, writer_storage) = shared_draft((&writer, &server, &reader)).await;
    wait_for_remote_heads(&seen, &writer_storage, &doc.heads().unwrap()).await;

    // A later change on the writer is reported as the server syncs it.
    doc.change(|tx| tx.put(ROOT, "title", "final"))
        .unwrap()
        .unwrap();
    let heads = doc.heads().unwrap();
    wait_for_remote_heads(&seen, &writer_storage, &heads).await;
    wait_for_heads(&seen, &heads).await;

    for repo in [writer, server, reader] {
        repo.shutdown().await;
    }
}

#[tokio::test]
async fn without_gossip_a_reader_only_knows_the_peers_it_syncs_with() {
    let (writer, server, reader) = three(false).await;
    let (doc, seen, writer_storage) = shared_draft((&writer, &server, &reader)).await;
    // A later change reaches the reader through the server. With gossip on, the server sends
    // the writer's heads to the reader on the same ordered link before that sync message; with
    // it off, nothing about the writer's storage ever arrives.
    doc.change(|tx| tx.put(ROOT, "title", "final"))
        .unwrap()
        .unwrap();
    wait_for_heads(&seen, &doc.heads().unwrap()).await;
    assert_eq!(seen.remote_heads(&writer_storage), None);

    for repo in [writer, server, reader] {
        repo.shutdown().await;
    }
}
