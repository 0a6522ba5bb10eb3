//! The task that drives one document's [`DocumentActor`].
//!
//! Every document a repo holds has its own task, so a large merge or a slow save of one document
//! never delays another. The task decides nothing: it turns what the hub and the handles send
//! into the actor's inputs, feeds them with the document locked, and performs the effects that
//! come back — messages into peers' outboxes, policy questions, storage reads and writes, states
//! and events onto the handle.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use automerge::Change;
use futures::{FutureExt, StreamExt};
use tandem_core::document::{
    CommandId, DocumentActor, DocumentEffect, DocumentInput, PeerInfo, SaveId, SaveOutcome, Start,
};
use tandem_core::hub::DocumentActorId;
use tandem_core::sync::HandleState;
use tandem_core::MessageData;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, warn};

use crate::channels::{DocEvent, DocInbox, HandleShared, HubEvent};
use crate::context::RepoContext;
use crate::events::RemoteHeadsEvent;
use crate::heavy_work::{heavy, HEAVY_BYTES};
use crate::outbox::PeerLink;
use crate::pending::Pending;
use crate::timer::deadline;
use crate::{RepoError, RepoEvent};

mod effects;
mod links;

use links::Links;

/// How a task begins.
pub(crate) enum Begin {
    /// Find: read storage first. `after` is the previous task of this document, still saving
    /// after an eviction; loading waits for it.
    Load {
        after: Option<oneshot::Receiver<()>>,
        /// Found through the repo's API rather than for a peer.
        wanted_locally: bool,
        /// Client transports are still making their first attempt.
        networks_settling: bool,
    },
    /// Created or imported here: ready at once, nothing to read.
    Created,
}

/// A step fed with the document locked, or the input of one to feed on a fork.
type Fed = Result<Vec<DocumentEffect>, Box<DocumentInput>>;

/// What woke a task waiting for its next input.
enum Wake {
    Event(DocEvent),
    /// Every sender of the inbox is gone.
    Closed,
    LocalChange,
    Saved(SaveId, Box<SaveOutcome>),
    Timeout,
}

/// Who waits for a command's completion.
enum Reply {
    /// A flush, an import or a delete: whether it worked.
    Outcome(oneshot::Sender<Result<(), RepoError>>),
    Done(oneshot::Sender<()>),
}

struct DocumentTask {
    id: DocumentActorId,
    shared: Arc<HandleShared>,
    ctx: Arc<RepoContext>,
    hub: mpsc::WeakSender<HubEvent>,
    actor: DocumentActor,
    /// Outboxes of the peers the actor may send to.
    links: Links,
    replies: Pending<Reply>,
    /// The previous task of the document, still saving; loading waits for it.
    after: Option<oneshot::Receiver<()>>,
    /// The save running beside the task, if any.
    saving: Option<(SaveId, oneshot::Receiver<SaveOutcome>)>,
    inbox: DocInbox,
}

pub(crate) fn spawn(
    id: DocumentActorId,
    shared: Arc<HandleShared>,
    ctx: Arc<RepoContext>,
    hub: mpsc::WeakSender<HubEvent>,
    inbox: DocInbox,
    begin: Begin,
    peers: Vec<(PeerLink, PeerInfo)>,
) {
    let (start, after) = match begin {
        Begin::Load {
            after,
            wanted_locally,
            networks_settling,
        } => (
            Start::Load {
                wanted_locally,
                networks_settling,
            },
            after,
        ),
        Begin::Created => (Start::Created, None),
    };
    let document_id = shared.document_id.clone();
    let mut links = Links::default();
    let peers = peers
        .into_iter()
        .map(|(link, info)| {
            links.insert(link);
            info
        })
        .collect();
    let actor = {
        let doc = shared.lock();
        DocumentActor::new(
            ctx.document.clone(),
            document_id.clone(),
            start,
            peers,
            &doc,
            Instant::now().into_std(),
        )
    };
    let mut task = DocumentTask {
        id,
        shared,
        ctx,
        hub,
        actor,
        links,
        replies: Pending::new(),
        after,
        saving: None,
        inbox,
    };
    let span = tracing::debug_span!("document", id = %document_id);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            // `task` is borrowed, not moved into `run`: an async fn's future holds a moved
            // argument twice.
            let outcome = AssertUnwindSafe(task.run()).catch_unwind().await;
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "(no message)".to_owned());
                task_panicked(&task, &message).await;
            }
        },
        span,
    ));
}

/// A task panicked (a bug, or a storage adapter or automerge call that panicked outside the
/// guards). Its handles would otherwise look ready while nothing saves or syncs their changes,
/// and a `find` waiting on it would wait forever: the handles turn unavailable (changes fail,
/// waits end), and the hub forgets the task, so the next `find` starts afresh from storage.
async fn task_panicked(task: &DocumentTask, message: &str) {
    let document_id = &task.shared.document_id;
    error!(
        %document_id,
        panic = message,
        "the document's task panicked; its handles are unavailable, and a new find loads it afresh"
    );
    task.shared.state.send_replace(HandleState::Unavailable);
    task.ctx
        .events
        .send(RepoEvent::Unavailable(document_id.clone()));
    if let Some(hub) = task.hub.upgrade() {
        let _ = hub.send(HubEvent::TaskFailed(task.id)).await;
    }
}

/// Events applied before a save that acknowledgements wait on, so that changes arriving
/// together are made durable together.
const QUEUE_BATCH: usize = 256;

impl DocumentTask {
    async fn run(&mut self) {
        let effects = {
            let mut doc = self.shared.lock();
            self.actor.start(Instant::now().into_std(), &mut doc)
        };
        if self.perform(Ok(effects)).await.is_break() {
            return;
        }
        loop {
            // What woke the task is handled after the `select!`, whose futures are gone by then:
            // a task waits here almost all its life, and its size is the largest of its waits.
            let wake = self.next_wake().await;
            let flow = match wake {
                Wake::Event(event) => self.event(event).await,
                Wake::Closed => ControlFlow::Break(()),
                Wake::LocalChange => self.step(DocumentInput::LocalChange).await,
                Wake::Saved(save, outcome) => {
                    let outcome = *outcome;
                    self.step(DocumentInput::Saved { save, outcome }).await
                }
                Wake::Timeout => self.timeout().await,
            };
            if flow.is_break() {
                return;
            }
        }
    }

    async fn next_wake(&mut self) -> Wake {
        let timeout = self.actor.next_timeout().map(Instant::from_std);
        tokio::select! {
            // Within tokio's task budget, as tokio's own channels are: a steady stream of events
            // must not keep this task from yielding to the others on its thread.
            event = tokio::task::coop::cooperative(self.inbox.next()) => {
                event.map_or(Wake::Closed, Wake::Event)
            }
            _ = self.shared.local_change.notified() => Wake::LocalChange,
            (save, outcome) = saving_done(&mut self.saving), if self.saving.is_some() => {
                Wake::Saved(save, Box::new(outcome))
            }
            _ = deadline(timeout) => Wake::Timeout,
        }
    }

    async fn timeout(&mut self) -> ControlFlow<()> {
        // Acknowledgements wait on the save about to start: changes already queued join it.
        if self.actor.waiting_on_next_save() {
            for _ in 0..QUEUE_BATCH {
                let Ok(event) = self.inbox.try_recv() else {
                    break;
                };
                if self.event(event).await.is_break() {
                    return ControlFlow::Break(());
                }
            }
        }
        self.step(DocumentInput::Timeout).await
    }

    fn command(&mut self, reply: Reply) -> CommandId {
        self.replies.insert(reply)
    }

    /// Handles what the hub or a handle sent. Fed before the returned future is first polled
    /// (see [`step`](Self::step)).
    fn event(&mut self, event: DocEvent) -> impl Future<Output = ControlFlow<()>> + Send + '_ {
        let policy_changed = matches!(event, DocEvent::SharePolicyChanged { .. });
        let fed = self.input_for(event).map(|input| self.feed(input));
        async move {
            let Some(fed) = fed else {
                return ControlFlow::Continue(());
            };
            let flow = self.perform(fed).await;
            if policy_changed {
                // Only the outboxes of peers the document syncs with are kept.
                let actor = &self.actor;
                self.links.retain(|peer| actor.knows_peer(peer));
            }
            flow
        }
    }

    /// The actor's input for what the hub or a handle sent, if it has one.
    fn input_for(&mut self, event: DocEvent) -> Option<DocumentInput> {
        let input = match event {
            DocEvent::PeerConnected(link, info) => {
                self.links.insert(link);
                DocumentInput::PeerConnected(info)
            }
            DocEvent::PeerDisconnected(peer) => {
                self.links.remove(&peer);
                DocumentInput::PeerDisconnected(peer)
            }
            DocEvent::Incoming(incoming) => {
                // Taken in: its connection may send another.
                let (link, message, _in_flight, granted) = *incoming;
                let input = DocumentInput::Incoming {
                    from: link.peer_id.clone(),
                    metadata: link.metadata.clone(),
                    granted,
                    message,
                };
                self.links.insert(link);
                input
            }
            DocEvent::Broadcast(data) => {
                let Ok(data) = MessageData::new(data) else {
                    return None; // CBOR never encodes a value as zero bytes
                };
                DocumentInput::Broadcast {
                    data,
                    count: self.ctx.next_ephemeral_count(),
                }
            }
            DocEvent::Flush(reply) => DocumentInput::Flush(self.command(Reply::Outcome(reply))),
            DocEvent::Delete(reply) => DocumentInput::Delete(self.command(Reply::Outcome(reply))),
            DocEvent::Stop(reply) => DocumentInput::Stop(self.command(Reply::Done(reply))),
            DocEvent::WantedLocally => DocumentInput::WantedLocally,
            DocEvent::AwaitNetworks => DocumentInput::AwaitNetworks,
            DocEvent::NetworksSettled => DocumentInput::NetworksSettled,
            DocEvent::Import {
                document,
                size,
                reply,
            } => DocumentInput::Import {
                document,
                size,
                command: self.command(Reply::Outcome(reply)),
            },
            DocEvent::RequestAgain(reply) => {
                DocumentInput::RequestAgain(self.command(Reply::Done(reply)))
            }
            DocEvent::GossipedHeads(storage_id, heads) => {
                match RemoteHeadsEvent::from_gossip(storage_id, &heads) {
                    Some(event) => self.record_remote_heads(event),
                    None => warn!("gossiped heads are not change hashes; ignored"),
                }
                return None;
            }
            DocEvent::SharePolicyChanged { peers, done } => {
                let peers = peers
                    .into_iter()
                    .map(|(link, info)| {
                        self.links.insert_if_absent(link);
                        info
                    })
                    .collect();
                let command = self.command(Reply::Done(done));
                DocumentInput::SharePolicyChanged { peers, command }
            }
        };
        Some(input)
    }

    /// Feeds one input, then the answers to the questions its effects ask, until none is left.
    /// The input is fed before the returned future is first polled, so the future does not hold
    /// it: a task's size is that of its largest wait, and it waits almost all its life.
    fn step(&mut self, input: DocumentInput) -> impl Future<Output = ControlFlow<()>> + Send + '_ {
        let fed = self.feed(input);
        self.perform(fed)
    }

    /// Performs the effects of a step, and feeds the answers of those that ask a question.
    async fn perform(&mut self, fed: Fed) -> ControlFlow<()> {
        let mut pending: VecDeque<DocumentEffect> = self.finish_feed(fed).await.into();
        loop {
            let Some(waiting) = self.perform_until_one_waits(&mut pending) else {
                break;
            };
            let fed = match waiting.await {
                Some(answer) => self.feed(answer),
                None => continue,
            };
            pending.extend(self.finish_feed(fed).await);
        }
        if self.actor.is_ended() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Performs effects from the front of `pending` until one has to wait, and returns what it
    /// waits on. Effects that wait are rare: their futures live on the heap, so that a
    /// document's task stays small while it waits for its next event.
    fn perform_until_one_waits<'a>(
        &'a mut self,
        pending: &mut VecDeque<DocumentEffect>,
    ) -> Option<Pin<Box<dyn Future<Output = Option<DocumentInput>> + Send + 'a>>> {
        while let Some(effect) = pending.pop_front() {
            if let Some(effect) = self.perform_now(effect) {
                return Some(Box::pin(self.perform_later(effect)));
            }
        }
        None
    }

    /// One step of the actor, with the document locked; or, for a step that applies a large
    /// sync message or an import, the input back, to go through
    /// [`feed_on_fork`](Self::feed_on_fork).
    fn feed(&mut self, input: DocumentInput) -> Fed {
        let weight = input.weight().max(self.actor.waiting_weight());
        if weight >= HEAVY_BYTES {
            return Err(Box::new(input));
        }
        let listening = self.shared.changes.receiver_count() > 0;
        let now = Instant::now().into_std();
        let shared = self.shared.clone();
        let mut doc = shared.lock();
        self.prepare(listening);
        Ok(self.actor.handle(now, input, &mut doc))
    }

    async fn finish_feed(&mut self, fed: Fed) -> Vec<DocumentEffect> {
        match fed {
            Ok(effects) => effects,
            Err(input) => Box::pin(self.feed_on_fork(*input)).await,
        }
    }

    /// A large step runs on a fork of the document, after handing the thread's other tasks
    /// over, and the lock is held only to swap the result in: handles read and change the
    /// document meanwhile, and changes made meanwhile are carried onto the fork.
    async fn feed_on_fork(&mut self, input: DocumentInput) -> Vec<DocumentEffect> {
        let weight = input.weight().max(self.actor.waiting_weight());
        let listening = self.shared.changes.receiver_count() > 0;
        let now = Instant::now().into_std();
        let shared = self.shared.clone();
        let (mut fork, before) = {
            let doc = shared.lock();
            self.prepare(listening);
            (doc.clone(), doc.get_heads())
        };
        let actor = &mut self.actor;
        let effects = heavy(weight, || actor.handle(now, input, &mut fork)).await;
        let mut doc = shared.lock();
        if doc.get_heads() != before {
            let made: Vec<Change> = doc.get_changes(&before);
            if let Err(error) = fork.apply_changes(made) {
                // automerge takes back its own changes; should it not, the document keeps them
                // and the merge waits for the next message.
                warn!(%error, "changes made during a merge do not apply to its result");
                return effects;
            }
        }
        *doc = fork;
        effects
    }

    /// Hands the actor the patches of local changes logged since its last step, and whether
    /// anyone listens (called with the document locked).
    fn prepare(&mut self, listening: bool) {
        let logged = std::mem::take(
            &mut *self
                .shared
                .local_patches
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for patches in logged {
            self.actor.note_local_patches(patches);
        }
        self.actor.set_listening(listening);
    }
}

/// The outcome of the save in flight; pending forever when there is none.
async fn saving_done(
    saving: &mut Option<(SaveId, oneshot::Receiver<SaveOutcome>)>,
) -> (SaveId, SaveOutcome) {
    let Some((save, outcome)) = saving.as_mut() else {
        return std::future::pending().await;
    };
    let save = *save;
    let outcome = outcome.await.unwrap_or_else(|_| SaveOutcome::lost());
    *saving = None;
    (save, outcome)
}
