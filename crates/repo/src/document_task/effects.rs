//! What a document task does with its actor's effects: sends, policy questions, storage reads
//! and writes, and what the handle publishes.

use std::sync::Arc;

use tandem_core::document::{Changed, DocumentEffect, DocumentInput, ShareAnswer, ShareQuestion};
use tandem_core::persistence::{load_document, take_in_stored, Loaded};
use tandem_core::storage::remove_document;
use tandem_core::sync::HandleState;
use tandem_core::ChunkKey;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{DocumentTask, Reply};
use crate::channels::HubEvent;
use crate::context::now_millis;
use crate::events::{ChangeOrigin, DocumentChange, EphemeralEvent, RemoteHeadsEvent};
use crate::heavy_work::heavy;
use crate::save_task;
use crate::{RepoError, RepoEvent};

impl DocumentTask {
    /// Performs an effect that needs no waiting; gives back one that does.
    pub(super) fn perform_now(&mut self, effect: DocumentEffect) -> Option<DocumentEffect> {
        let document_id = &self.shared.document_id;
        match effect {
            DocumentEffect::Send(message) => {
                match message.target_id().and_then(|t| self.links.get(t)) {
                    Some(link) => link.outbox.send(message),
                    None => debug!(kind = message.type_name(), "peer gone; message dropped"),
                }
            }
            DocumentEffect::Disconnect(peer) => {
                if let Some(link) = self.links.get(&peer) {
                    link.outbox.close();
                }
            }
            DocumentEffect::Save { save, job } => {
                if let Some(storage) = self.ctx.storage.clone() {
                    let outcome =
                        save_task::spawn(self.ctx.clone(), storage, document_id.clone(), job);
                    self.saving = Some((save, outcome));
                }
            }
            DocumentEffect::State(state) => {
                let asked = match state {
                    HandleState::Requesting => self.actor.sync_peers().cloned().collect(),
                    _ => Vec::new(),
                };
                *self
                    .shared
                    .requesting_from
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = asked;
                self.shared.state.send_replace(state);
                let document_id = || self.shared.document_id.clone();
                match state {
                    HandleState::Unavailable => {
                        self.ctx.events.send(RepoEvent::Unavailable(document_id()))
                    }
                    HandleState::Deleted => self.ctx.events.send(RepoEvent::Deleted(document_id())),
                    _ => {}
                }
            }
            DocumentEffect::Changed(changed) => self.publish_change(changed),
            DocumentEffect::RemoteHeads { storage_id, heads } => {
                let mut timestamp = now_millis();
                if let Some(gossip) = &self.ctx.gossip {
                    // The handle keeps the stamp gossip gave the record, so that the record
                    // relayed back to us later is not mistaken for newer news.
                    timestamp = gossip.direct_heads(document_id, &storage_id, &heads, timestamp);
                }
                self.record_remote_heads(RemoteHeadsEvent {
                    storage_id,
                    heads,
                    timestamp,
                });
            }
            DocumentEffect::Ephemeral { sender, data, .. } => {
                self.shared.ephemeral.send(EphemeralEvent {
                    sender_id: sender,
                    data,
                });
            }
            DocumentEffect::Acknowledged { waited } => {
                if let Some(observer) = &self.ctx.observer {
                    observer.durable_acknowledgement(waited);
                }
            }
            DocumentEffect::Refused { peer, over } => {
                if let Some(observer) = &self.ctx.observer {
                    observer.change_refused(&over);
                }
                self.tell_hub(HubEvent::WritesRefused {
                    peer,
                    document_id: document_id.clone(),
                });
            }
            DocumentEffect::PeerOpened(peer) => {
                if let Some(gossip) = &self.ctx.gossip {
                    gossip.peer_opened(&peer, document_id);
                }
            }
            DocumentEffect::Idle { available } => {
                // The task and the hub each hold one reference; anything more is a user's handle.
                if Arc::strong_count(&self.shared) <= 2 {
                    self.tell_hub(HubEvent::Idle {
                        actor: self.id,
                        available,
                    });
                }
            }
            DocumentEffect::Completed { command, result } => match self.replies.take(command) {
                Some(Reply::Outcome(reply)) => {
                    let _ = reply.send(result.map_err(RepoError::from));
                }
                Some(Reply::Done(reply)) => {
                    let _ = reply.send(());
                }
                None => {}
            },
            DocumentEffect::Imported { command, result } => {
                if let Some(Reply::Outcome(reply)) = self.replies.take(command) {
                    let _ = reply.send(result.map_err(RepoError::from));
                }
            }
            waits => return Some(waits),
        }
        None
    }

    /// Performs an effect that waits (on the policy, storage or the hub); returns the input that
    /// answers it, if it asks something.
    pub(super) async fn perform_later(&mut self, effect: DocumentEffect) -> Option<DocumentInput> {
        let document_id = &self.shared.document_id;
        match effect {
            DocumentEffect::Ask {
                question,
                peer,
                ask,
            } => {
                let policy = &self.ctx.policy;
                let answer = match ask {
                    ShareQuestion::Announce => {
                        ShareAnswer::Announce(policy.announce(&peer, Some(document_id)).await)
                    }
                    ShareQuestion::Access => {
                        ShareAnswer::Access(policy.access(&peer, document_id).await)
                    }
                };
                return Some(DocumentInput::Answered { question, answer });
            }
            DocumentEffect::LoadSyncState { read, storage_id } => {
                let key = ChunkKey::sync_state(document_id.clone(), &storage_id).to_storage_key();
                let state = match &self.ctx.storage {
                    Some(storage) => match storage.load(&key).await {
                        Ok(state) => state,
                        Err(error) => {
                            warn!(?key, %error, "could not read a sync state");
                            None
                        }
                    },
                    None => None,
                };
                return Some(DocumentInput::SyncStateLoaded { read, state });
            }
            DocumentEffect::Load => {
                let loaded = self.load().await;
                // What arrived while loading goes in first (the actor holds it until loaded).
                while let Ok(event) = self.inbox.try_recv() {
                    let effects = Box::pin(self.event(event)).await;
                    if effects.is_break() {
                        return None;
                    }
                }
                return Some(DocumentInput::Loaded(loaded));
            }
            DocumentEffect::RemoveDocument { tombstone } => {
                let removed = match &self.ctx.storage {
                    Some(storage) => {
                        remove_document(storage.as_ref(), document_id, tombstone).await
                    }
                    None => Ok(()),
                };
                return Some(DocumentInput::Removed(removed));
            }
            DocumentEffect::Stopped => {
                if let Some(hub) = self.hub.upgrade() {
                    let _ = hub.send(HubEvent::Ended(self.id)).await;
                }
            }
            other => {
                self.perform_now(other);
            }
        }
        None
    }

    /// Tells the hub `event` without waiting on it (the hub may be waiting on this task). Should
    /// its queue be full (a flood of requests), a task of its own delivers it: an idle offer
    /// lost there kept documents asked for by a flood in memory until their next idle time.
    fn tell_hub(&self, event: HubEvent) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(event)) = hub.try_send(event) {
            tokio::spawn(async move {
                let _ = hub.send(event).await;
            });
        }
    }

    /// Waits for the previous task of the document, then reads the chunks and merges them into
    /// the handle's document.
    async fn load(&mut self) -> Loaded {
        if let Some(previous) = self.after.take() {
            let _ = previous.await;
        }
        let failed = Loaded {
            ledger: None,
            found: false,
            deleted: false,
        };
        let Some(storage) = self.ctx.storage.clone() else {
            return failed;
        };
        let document_id = self.shared.document_id.clone();
        let chunks = match storage.load_document(&document_id).await {
            Ok(stored) if stored.deleted => {
                return Loaded {
                    deleted: true,
                    ..failed
                }
            }
            Ok(stored) => stored.chunks,
            Err(error) => {
                warn!(%error, "reading the document from storage failed");
                return failed;
            }
        };
        let bytes = chunks.iter().map(|(_, chunk)| chunk.len()).sum();
        let shared = &self.shared;
        heavy(bytes, || {
            let loaded = load_document(&document_id, chunks);
            take_in_stored(&mut shared.lock(), loaded)
        })
        .await
    }

    fn publish_change(&mut self, changed: Changed) {
        let Changed {
            origin,
            before,
            after,
            patches,
        } = changed;
        let patches = match patches {
            Some(patches) => patches,
            None if self.shared.changes.receiver_count() > 0 => {
                self.shared.lock().diff(&before, &after)
            }
            None => Vec::new(),
        };
        self.shared.changes.send(DocumentChange {
            heads: after,
            patches: patches.into(),
            origin: origin.map_or(ChangeOrigin::Local, ChangeOrigin::Peer),
        });
    }

    /// Keeps the newest heads per storage on the handle and tells its listeners.
    pub(super) fn record_remote_heads(&mut self, event: RemoteHeadsEvent) {
        {
            let mut known = self
                .shared
                .remote_heads
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if known
                .get(&event.storage_id)
                .is_some_and(|old| old.timestamp > event.timestamp)
            {
                return;
            }
            known.insert(event.storage_id.clone(), event.clone());
        }
        self.shared.remote_heads_events.send(event);
    }
}
