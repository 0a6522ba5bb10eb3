//! Documents nobody has: how fast a find gives up, and how it recovers when someone turns up.

use std::time::{Duration, Instant};

use crate::common::*;
use automerge::transaction::Transactable;
use automerge::ROOT;
use futures::StreamExt;
use tandem_core::DocumentId;
use tandem_repo::{FindProgress, HandleState, Repo, RepoError};

async fn assert_unavailable(repo: &Repo) {
    let id = DocumentId::random();
    let started = Instant::now();
    match repo.find(&id).await {
        Err(RepoError::Unavailable(missing)) => assert_eq!(missing, id),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Far below the 60 s find timeout: the answer came from the peers, not from a timer.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_peers_an_unknown_document_is_unavailable_at_once() {
    let repo = Repo::builder()
        .storage(tandem_storage_mem::MemoryStorage::new())
        .start()
        .await
        .unwrap();
    assert_unavailable(&repo).await;
    repo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_peer_an_unknown_document_is_unavailable_once_it_says_so() {
    let (a, b, _link) = connected(Repo::builder(), Repo::builder()).await;
    assert_unavailable(&a).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_peers_an_unknown_document_is_unavailable_once_all_say_so() {
    let center = Repo::builder().start().await.unwrap();
    let mut others = Vec::new();
    let mut links = Vec::new();
    for _ in 0..3 {
        let other = Repo::builder().start().await.unwrap();
        links.push(link(&center, &other).await);
        others.push(other);
    }
    // The others are meshed too, so requests are forwarded around before anyone gives up.
    links.push(link(&others[0], &others[1]).await);
    links.push(link(&others[1], &others[2]).await);
    assert_unavailable(&center).await;
    center.shutdown().await;
    for other in others {
        other.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_document_becomes_ready_when_a_peer_with_it_connects() {
    let seeker = Repo::builder().start().await.unwrap();
    let owner = Repo::builder().start().await.unwrap();
    let doc = owner.create_empty().await.unwrap();
    doc.change(|tx| tx.put(ROOT, "k", 1).unwrap()).unwrap();
    let progress: Vec<FindProgress> = seeker
        .find_with_progress(doc.url())
        .await
        .unwrap()
        .collect()
        .await;
    let Some(FindProgress::Unavailable(handle)) = progress.last().cloned() else {
        panic!("{progress:?}");
    };
    let _link = link(&seeker, &owner).await;
    handle
        .wait_for_state(PATIENCE, |s| s == HandleState::Ready)
        .await
        .unwrap();
    wait_for_heads(&handle, &doc.heads().unwrap()).await;
    seeker.shutdown().await;
    owner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_makes_the_find_time_out() {
    use tandem_core::{Connection, LocalPeer, PeerMetadata};
    // A "peer" that never answers: we hold its end of the connection and read nothing.
    struct Silent(std::sync::Mutex<Option<Connection>>);
    #[async_trait::async_trait]
    impl tandem_core::NetworkAdapter for Silent {
        async fn start(
            self: Box<Self>,
            _local: LocalPeer,
        ) -> Result<tandem_core::Connections, tandem_core::NetworkError> {
            let connection = self.0.lock().unwrap().take();
            Ok(Box::pin(
                futures::stream::iter(connection).chain(futures::stream::pending()),
            ))
        }
    }
    let me = LocalPeer {
        peer_id: "me".into(),
        metadata: PeerMetadata::default(),
    };
    let silent = LocalPeer {
        peer_id: "silent".into(),
        metadata: PeerMetadata::default(),
    };
    let (mine, _theirs) = Connection::in_memory_pair(&me, &silent, 1024);
    let repo = Repo::builder()
        .peer_id("me")
        .find_timeout(Duration::from_millis(300))
        .network(Silent(std::sync::Mutex::new(Some(mine))))
        .start()
        .await
        .unwrap();
    repo.wait_for_peer(&"silent".into(), PATIENCE)
        .await
        .unwrap();
    let result = tokio::time::timeout(PATIENCE, repo.find(DocumentId::random())).await;
    assert!(matches!(result, Ok(Err(RepoError::Unavailable(_)))));
    // Its progress: the silent peer is asked, and then the find gives up.
    let mut progress = Box::pin(repo.find_with_progress(DocumentId::random()).await.unwrap());
    let mut asked = None;
    let last = tokio::time::timeout(PATIENCE, async {
        loop {
            match progress.next().await {
                Some(FindProgress::Requesting { peers }) => asked = Some(peers),
                Some(FindProgress::Loading) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("the find never settled");
    assert_eq!(asked, Some(vec![tandem_core::PeerId::from("silent")]));
    assert!(
        matches!(last, Some(FindProgress::Unavailable(_))),
        "{last:?}"
    );
    assert!(
        progress.next().await.is_none(),
        "progress went on after it settled"
    );
    repo.shutdown().await;
}
