//! A client that speaks the sync protocol by hand over one WebSocket: join, then keep a few
//! automerge documents in sync with the server. Cheap enough that one process holds 10,000 of
//! them on two cores (S6), where 10,000 full repos would not fit.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ROOT};
use futures::{SinkExt, StreamExt};
use tandem_core::{DocumentId, LocalPeer, Message, MessageData, PeerId, PeerMetadata, SyncMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::BenchError;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest message a raw client takes.
const MAX_MESSAGE: usize = 256 << 20;

fn failed(e: tokio_tungstenite::tungstenite::Error) -> BenchError {
    BenchError::Client(e.to_string())
}

/// One document the client holds, with its sync state towards the server.
struct Held {
    doc: Automerge,
    state: sync::State,
    /// Local changes the server has not yet shown it holds, oldest first, with when each was
    /// sent.
    unacknowledged: VecDeque<(ChangeHash, Instant)>,
}

/// A joined client.
pub struct RawClient {
    socket: Socket,
    me: PeerId,
    server: PeerId,
    held: HashMap<DocumentId, Held>,
}

impl RawClient {
    /// Connects to `url` and joins as `name` (ephemeral, no storage id); returns once the
    /// server has answered `peer`.
    pub async fn join(url: &str, name: String) -> Result<RawClient, BenchError> {
        // Without Nagle's algorithm, as browsers and the tandem and JS clients connect: a small
        // frame written while another is unacknowledged would otherwise wait for its ACK.
        // Room for a large document's first sync (S7 sends 50 MB in one message), as the
        // servers allow.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(failed)?;
        let me = PeerId::from(name);
        let join = tandem_core::network::handshake::join(&LocalPeer {
            peer_id: me.clone(),
            metadata: PeerMetadata {
                storage_id: None,
                is_ephemeral: true,
            },
        });
        socket
            .send(Frame::binary(join.encode()))
            .await
            .map_err(failed)?;
        loop {
            let frame = socket
                .next()
                .await
                .ok_or_else(|| BenchError::Client("closed before `peer`".into()))?
                .map_err(failed)?;
            if let Frame::Binary(bytes) = frame {
                if let Ok(Message::Peer(peer)) = Message::decode(&bytes) {
                    return Ok(RawClient {
                        socket,
                        me,
                        server: peer.sender_id,
                        held: HashMap::new(),
                    });
                }
            }
        }
    }

    /// Starts syncing `doc` as `document_id` with the server.
    pub async fn hold(
        &mut self,
        document_id: DocumentId,
        doc: Automerge,
    ) -> Result<(), BenchError> {
        self.held.insert(
            document_id.clone(),
            Held {
                doc,
                state: sync::State::new(),
                unacknowledged: VecDeque::new(),
            },
        );
        self.send_sync(&document_id).await
    }

    /// Whether the server has said it holds exactly what this client holds, for every document.
    pub fn in_sync(&self) -> bool {
        self.held
            .values()
            .all(|held| held.state.their_heads.as_deref() == Some(held.doc.get_heads().as_slice()))
    }

    /// Changes `document_id` (one counter put) and sends the change.
    pub async fn edit(&mut self, document_id: &DocumentId, value: i64) -> Result<(), BenchError> {
        let held = self
            .held
            .get_mut(document_id)
            .ok_or_else(|| BenchError::Client(format!("{document_id} is not held")))?;
        let mut tx = held.doc.transaction();
        tx.put(ROOT, "n", value)
            .map_err(|e| BenchError::Client(e.to_string()))?;
        let (hash, _) = tx.commit();
        if let Some(hash) = hash {
            held.unacknowledged.push_back((hash, Instant::now()));
        }
        self.send_sync(document_id).await
    }

    /// The next frame from the server; `None` once the socket has closed. Safe to race
    /// against other futures: nothing is lost if it is dropped before it finishes.
    pub async fn receive(&mut self) -> Option<Result<Frame, BenchError>> {
        Some(self.socket.next().await?.map_err(failed))
    }

    /// Answers `frame`. Local changes the server now shows it holds (its sync message's heads
    /// include them) are pushed onto `acknowledged`, as (when sent, round trip).
    pub async fn answer(
        &mut self,
        frame: Frame,
        acknowledged: &mut Vec<(Instant, Duration)>,
    ) -> Result<(), BenchError> {
        let Frame::Binary(bytes) = frame else {
            return Ok(());
        };
        let message = Message::decode(&bytes).map_err(|e| BenchError::Client(e.to_string()))?;
        let (Message::Sync(sync) | Message::Request(sync)) = message else {
            if let Message::DocUnavailable(m) = message {
                return Err(BenchError::Wrong(format!("{} unavailable", m.document_id)));
            }
            return Ok(());
        };
        let Some(held) = self.held.get_mut(&sync.document_id) else {
            return Ok(());
        };
        let decoded = sync::Message::decode(sync.data.as_bytes())
            .map_err(|e| BenchError::Client(e.to_string()))?;
        let arrived = Instant::now();
        // This client alone changes its documents' counters, so the server's heads name one of
        // our changes: it and every earlier one are held.
        if let Some(last) = held
            .unacknowledged
            .iter()
            .rposition(|(hash, _)| decoded.heads.contains(hash))
        {
            for (_, sent) in held.unacknowledged.drain(..=last) {
                acknowledged.push((sent, arrived - sent));
            }
        }
        held.doc
            .receive_sync_message(&mut held.state, decoded)
            .map_err(|e| BenchError::Client(e.to_string()))?;
        let document_id = sync.document_id;
        self.send_sync(&document_id).await
    }

    /// The heads of `document_id` as this client holds it.
    pub fn heads(&self, document_id: &DocumentId) -> Vec<ChangeHash> {
        self.held
            .get(document_id)
            .map(|held| held.doc.get_heads())
            .unwrap_or_default()
    }

    /// Local changes the server has yet to show it holds.
    pub fn unacknowledged(&self) -> usize {
        self.held.values().map(|h| h.unacknowledged.len()).sum()
    }

    /// Reads and answers frames until this client holds `document_id` at `heads`.
    pub async fn wait_for_heads(
        &mut self,
        document_id: &DocumentId,
        heads: &[ChangeHash],
    ) -> Result<(), BenchError> {
        self.answer_until(|client| client.heads(document_id) == heads)
            .await
    }

    /// Reads and answers frames until the server holds exactly what this client holds.
    pub async fn wait_in_sync(&mut self) -> Result<(), BenchError> {
        self.answer_until(RawClient::in_sync).await
    }

    async fn answer_until(&mut self, done: impl Fn(&RawClient) -> bool) -> Result<(), BenchError> {
        let mut acknowledged = Vec::new();
        while !done(self) {
            let frame = self
                .receive()
                .await
                .ok_or_else(|| BenchError::Client("closed while syncing".into()))??;
            self.answer(frame, &mut acknowledged).await?;
        }
        Ok(())
    }

    async fn send_sync(&mut self, document_id: &DocumentId) -> Result<(), BenchError> {
        let Some(held) = self.held.get_mut(document_id) else {
            return Ok(());
        };
        let Some(message) = held.doc.generate_sync_message(&mut held.state) else {
            return Ok(());
        };
        let data =
            MessageData::new(message.encode()).map_err(|e| BenchError::Client(e.to_string()))?;
        let frame = Message::Sync(SyncMessage {
            sender_id: self.me.clone(),
            target_id: self.server.clone(),
            document_id: document_id.clone(),
            data,
        })
        .encode();
        self.socket.send(Frame::binary(frame)).await.map_err(failed)
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
