//! Two repos in one process over the in-memory network: create on one, find on the other,
//! edit on both, watch the changes arrive.
//!
//! ```sh
//! cargo run --example two_repos
//! ```

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use futures::StreamExt;
use tandem::network::memory;
use tandem::Repo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (left, right, link) = memory::pair();
    let alice = Repo::builder().network(left).start().await?;
    let bob = Repo::builder().network(right).start().await?;
    bob.wait_for_peer(alice.peer_id(), std::time::Duration::from_secs(5))
        .await?;

    let doc = alice
        .create_from(&serde_json::json!({"title": "shopping", "items": ["milk"]}))
        .await?;
    println!("alice created {}", doc.url());

    let found = bob.find(doc.url()).await?;
    let mut changes = Box::pin(doc.changes());
    found.change(|tx| tx.put(ROOT, "title", "shopping (shared)"))??;
    println!("bob renamed it");

    // Alice sees bob's change arrive, with its origin.
    let change = changes.next().await.ok_or("no change")?;
    let title = doc.with_doc(|d| d.get(ROOT, "title").map(|v| v.map(|(v, _)| v.to_string())))??;
    println!(
        "alice saw a change from {:?}: title is now {title:?}",
        change.origin
    );

    // Cut the link, edit both sides, restore: they converge.
    link.cut();
    doc.change(|tx| tx.put(ROOT, "by_alice", true))??;
    found.change(|tx| tx.put(ROOT, "by_bob", true))??;
    link.restore();
    bob.wait_for_peer(alice.peer_id(), std::time::Duration::from_secs(5))
        .await?;
    while doc.heads()? != found.heads()? {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(100), changes.next()).await;
    }
    println!("after the partition both have {} heads", doc.heads()?.len());

    alice.shutdown().await;
    bob.shutdown().await;
    Ok(())
}
