//! One established byte stream, after the handshake, turned into a repo [`Connection`].
//!
//! Two tasks per stream. The reader decodes frames into messages for the repo; a frame that is
//! not a message, or one over the size limit, ends the connection (a peer on this transport is
//! another program, not a browser to be lenient with). The writer encodes the repo's messages and
//! gives up on a peer that stops reading. Either task ending ends the other, and the repo sees
//! the peer disconnect.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tandem_core::{Connection, Message, NetworkError, RemotePeer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, warn};

/// A stream with the length-prefix framing on it.
pub(crate) type FramedStream<S> = Framed<S, LengthDelimitedCodec>;

/// Messages queued for one stream before the repo's writer waits.
const QUEUE: usize = 64;

/// Runs the stream's tasks and returns the repo's view of it, and a receiver that turns `true`
/// once the stream is finished.
pub(crate) fn connection<S>(
    framed: FramedStream<S>,
    remote: RemotePeer,
    write_timeout: Duration,
) -> (Connection, watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = framed.split();
    let (out_tx, out_rx) = mpsc::channel::<Message>(QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Result<Message, NetworkError>>(QUEUE);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(write_frames(
        sink,
        out_rx,
        write_timeout,
        stop_tx.clone(),
        stop_rx.clone(),
        remote.clone(),
    ));
    tokio::spawn(read_frames(
        stream,
        in_tx,
        stop_tx,
        stop_rx.clone(),
        remote.clone(),
    ));
    let outgoing = futures::sink::unfold(out_tx, |tx, message: Message| async move {
        tx.send(message).await.map_err(|_| NetworkError::Closed)?;
        Ok::<_, NetworkError>(tx)
    });
    let incoming = futures::stream::unfold(in_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let connection = Connection {
        remote,
        outgoing: Box::pin(outgoing),
        incoming: Box::pin(incoming),
        grant: tandem_core::Grant::default(),
    };
    (connection, stop_rx)
}

/// Resolves once either task has finished the stream.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn write_frames<S>(
    mut sink: SplitSink<FramedStream<S>, Bytes>,
    mut outgoing: mpsc::Receiver<Message>,
    write_timeout: Duration,
    stop_tx: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
    remote: RemotePeer,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        tokio::select! {
            message = outgoing.recv() => {
                let Some(message) = message else {
                    // The repo let go of the peer: flush and shut our half down, so the other
                    // end reads the end of the stream.
                    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
                    break;
                };
                // A peer that stops reading must not keep the repo's writer stuck for as long as
                // TCP takes to give up.
                let write = sink.send(Bytes::from(message.encode()));
                match tokio::time::timeout(write_timeout, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        debug!(peer = %remote.peer_id, %error, "write failed");
                        break;
                    }
                    Err(_) => {
                        warn!(peer = %remote.peer_id, "the peer stopped reading; closing the connection");
                        break;
                    }
                }
            }
            _ = stopped(&mut stop) => break,
        }
    }
    let _ = stop_tx.send(true);
}

async fn read_frames<S>(
    mut stream: SplitStream<FramedStream<S>>,
    incoming: mpsc::Sender<Result<Message, NetworkError>>,
    stop_tx: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
    remote: RemotePeer,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = &remote.peer_id;
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = stopped(&mut stop) => break,
        };
        let bytes = match frame {
            None => break,
            Some(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                // The other process exited with the connection open: routine.
                debug!(%peer, %error, "connection reset by the peer");
                break;
            }
            Some(Err(error)) => {
                // Includes a frame over the size limit (InvalidData) and a stream cut mid-frame.
                warn!(%peer, %error, "read failed; closing the connection");
                let _ = incoming.send(Err(NetworkError::Io(error))).await;
                break;
            }
            Some(Ok(bytes)) => bytes,
        };
        let message = match Message::decode(&bytes) {
            Ok(message) => message,
            Err(error) => {
                warn!(%peer, %error, "undecodable frame; closing the connection");
                let _ = incoming.send(Err(NetworkError::Decode(error))).await;
                break;
            }
        };
        if message.is_handshake() {
            debug!(%peer, kind = message.type_name(), "handshake message after the handshake; ignored");
            continue;
        }
        // Who may claim which sender is the hub's decision, in one place.
        if incoming.send(Ok(message)).await.is_err() {
            break;
        }
    }
    let _ = stop_tx.send(true);
}
