//! One established WebSocket, after the handshake, turned into a repo [`Connection`].
//!
//! Two tasks per socket. The reader decodes binary frames into messages for the repo (which
//! sender a message may claim is the hub's decision) and notes that the other end is alive. The writer encodes the repo's messages as binary frames, pings every keepalive
//! interval, and drops a socket from which nothing (no pong, no frame at all) arrived since the
//! previous ping. Either task ending ends the other, and the repo sees the peer disconnect.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tandem_core::{Connection, Message, NetworkError, RemotePeer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use crate::server::{read_fault, report, SocketFault};

/// Messages queued for one socket before the repo's writer waits.
const QUEUE: usize = 64;

/// Which end of the socket we are: servers are strict, clients forgiving, as in JS.
#[derive(Clone)]
pub(crate) enum Side {
    /// A frame that is not a message closes the socket; so does the lapse of its credentials.
    Server {
        keepalive: Duration,
        expires_at: Option<std::time::Instant>,
        /// Turns `true` when the server shuts down.
        going_away: watch::Receiver<bool>,
        /// Told of every message.
        observer: Option<Arc<dyn crate::server::SocketObserver>>,
    },
    /// A frame that is not a message is logged and ignored. `keepalive: None` only answers the
    /// server's pings and never gives up on a silent server.
    Client { keepalive: Option<Duration> },
}

/// Runs the socket's tasks and returns the repo's view of it, and a receiver that turns `true`
/// once the socket is finished.
pub(crate) fn connection<S>(
    ws: WebSocketStream<S>,
    remote: RemotePeer,
    side: Side,
) -> (Connection, watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let (out_tx, out_rx) = mpsc::channel::<Message>(QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Result<Message, NetworkError>>(QUEUE);
    let (stop_tx, stop_rx) = watch::channel(false);
    let pump = Pump {
        side,
        alive: Arc::new(AtomicBool::new(true)),
        stop_tx,
        stop: stop_rx.clone(),
        remote: remote.clone(),
    };
    tokio::spawn(write_frames(sink, out_rx, pump.clone()));
    tokio::spawn(read_frames(stream, in_tx, pump));
    let outgoing = futures::sink::unfold(out_tx, |tx, message: Message| async move {
        tx.send(message).await.map_err(|_| NetworkError::Closed)?;
        Ok::<_, NetworkError>(tx)
    });
    let incoming = futures::stream::unfold(in_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let finished = stop_rx.clone();
    let connection = Connection {
        remote,
        outgoing: Box::pin(outgoing),
        incoming: Box::pin(incoming),
        grant: tandem_core::Grant::default(),
    };
    (connection, finished)
}

/// What the reader and the writer of one socket share.
#[derive(Clone)]
struct Pump {
    side: Side,
    /// Something (a pong or any other frame) arrived since the last ping.
    alive: Arc<AtomicBool>,
    /// Set by whichever task finishes first.
    stop_tx: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
    remote: RemotePeer,
}

async fn write_frames<S>(
    mut sink: SplitSink<WebSocketStream<S>, Frame>,
    mut outgoing: mpsc::Receiver<Message>,
    pump: Pump,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Pump {
        side,
        alive,
        stop_tx,
        mut stop,
        remote,
    } = pump;
    let (keepalive, expires_at, going_away, observer) = match side {
        Side::Server {
            keepalive,
            expires_at,
            going_away,
            observer,
        } => (Some(keepalive), expires_at, Some(going_away), observer),
        Side::Client { keepalive } => (keepalive, None, None, None),
    };
    let mut going_away = going_away;
    let expiry = expires_at.map(tokio::time::Instant::from_std);
    let mut ticks = keepalive.map(|every| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        tokio::select! {
            message = outgoing.recv() => {
                let Some(message) = message else {
                    // The repo let go of the peer: say goodbye properly.
                    let _ = sink.send(Frame::Close(None)).await;
                    break;
                };
                // A peer that stops reading must not keep a write (and so the pings) stuck for as
                // long as TCP takes to give up.
                let bytes = message.encode();
                if let Some(observer) = &observer {
                    observer.sent(message.type_name(), bytes.len());
                }
                let write = sink.send(Frame::binary(bytes));
                let written = match keepalive {
                    Some(every) => tokio::time::timeout(every * 2, write)
                        .await
                        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into())),
                    None => write.await,
                };
                if let Err(error) = written {
                    debug!(peer = %remote.peer_id, %error, "websocket write failed");
                    break;
                }
            }
            _ = tick(&mut ticks) => {
                if !alive.swap(false, Ordering::Relaxed) {
                    info!(peer = %remote.peer_id, "nothing heard since the last ping; dropping the socket");
                    break;
                }
                if sink.send(Frame::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            _ = server_going_away(&mut going_away) => {
                let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away,
                    reason: "server shutting down".into(),
                };
                let _ = sink.send(Frame::Close(Some(close))).await;
                break;
            }
            _ = tokio::time::sleep_until(expiry.unwrap_or_else(far_future)), if expiry.is_some() => {
                info!(peer = %remote.peer_id, "credentials expired; closing the socket");
                let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: crate::server::CREDENTIALS_EXPIRED.into(),
                    reason: "credentials expired".into(),
                };
                let _ = sink.send(Frame::Close(Some(close))).await;
                break;
            }
            _ = stopped(&mut stop) => break,
        }
    }
    let _ = stop_tx.send(true);
}

/// Resolves once either task has finished the socket.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => futures::future::pending().await,
    }
}

async fn read_frames<S>(
    mut stream: SplitStream<WebSocketStream<S>>,
    incoming: mpsc::Sender<Result<Message, NetworkError>>,
    pump: Pump,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Pump {
        side,
        alive,
        stop_tx,
        mut stop,
        remote,
    } = pump;
    let (strict, observer) = match &side {
        Side::Server { observer, .. } => (true, observer.clone()),
        Side::Client { .. } => (false, None),
    };
    let peer = &remote.peer_id;
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = stopped(&mut stop) => break,
        };
        alive.store(true, Ordering::Relaxed);
        let bytes = match frame {
            None => break,
            Some(Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ))) => {
                // The other end went away without a goodbye: routine for clients that quit.
                debug!(%peer, "connection reset without a closing handshake");
                break;
            }
            Some(Err(tungstenite::Error::Io(error)))
                if error.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                // The same when the peer's process exits with the socket open (TCP reset).
                debug!(%peer, %error, "connection reset by the peer");
                break;
            }
            Some(Err(error)) => {
                // Includes frames over the size limit and protocol violations.
                warn!(%peer, %error, "websocket read failed; closing the socket");
                report(observer.as_ref(), read_fault(&error));
                break;
            }
            Some(Ok(Frame::Binary(bytes))) => bytes,
            Some(Ok(Frame::Text(text))) if strict => {
                // JS servers feed text to the CBOR decoder, which fails: the socket closes.
                warn!(%peer, len = text.len(), "text frame; closing the socket");
                report(observer.as_ref(), Some(SocketFault::Protocol));
                break;
            }
            Some(Ok(Frame::Text(_))) => {
                warn!(%peer, "text frame ignored");
                continue;
            }
            // Pongs only prove life (noted above); pings are answered by tungstenite.
            Some(Ok(Frame::Pong(_) | Frame::Ping(_) | Frame::Frame(_))) => continue,
            Some(Ok(Frame::Close(_))) => break,
        };
        let message = match Message::decode(&bytes) {
            Ok(message) => message,
            Err(error) if strict => {
                warn!(%peer, %error, "undecodable frame; closing the socket");
                report(observer.as_ref(), Some(SocketFault::Protocol));
                break;
            }
            Err(error) => {
                warn!(%peer, %error, "undecodable frame ignored");
                continue;
            }
        };
        if let Some(observer) = &observer {
            observer.received(message.type_name(), bytes.len());
        }
        if message.is_handshake() {
            debug!(%peer, kind = message.type_name(), "handshake message after the handshake; ignored");
            continue;
        }
        // Who may claim which sender is the hub's decision, in one place: a relay forwards
        // ephemeral messages under their original senders' ids, in either direction.
        if incoming.send(Ok(message)).await.is_err() {
            break;
        }
    }
    let _ = stop_tx.send(true);
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Resolves once the server goes away; never on a client's socket.
async fn server_going_away(going_away: &mut Option<watch::Receiver<bool>>) {
    match going_away {
        Some(going_away) => {
            if going_away.wait_for(|gone| *gone).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
