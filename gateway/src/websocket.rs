//! Bidirectional calls over WebSocket: one bare JSON message per frame each way. The call ends
//! with close code 1000 when it succeeds, or with a final `{"error": <Status>}` frame and close
//! code 1011 when it fails (a bad inbound message included).
//!
//! Inbound frames are read by their own task so that a backend waiting for the client to read
//! never blocks the client's messages from reaching it, and the other way round.

use crate::call::{CallMeta, StreamItem};
use crate::error::GatewayError;
use crate::status::status_json;
use crate::upstream::Upstream;
use crate::wire::{EncodedMessage, StreamContext};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use bytes::Bytes;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use http::uri::PathAndQuery;
use prost_reflect::DescriptorPool;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

/// Inbound messages queued toward the backend before the socket stops being read.
const INBOUND_QUEUE: usize = 16;

/// What ended the inbound side.
enum InboundEnd {
    /// The client closed the socket or went away.
    Closed,
    /// The client sent a message that does not fit.
    Bad(GatewayError),
    /// The client sent a frame over the size limit (close code 1009).
    TooBig(GatewayError),
}

/// Whether a socket error is a frame over the configured size limit.
fn too_big(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(tungstenite::Error::Capacity(_)) = s.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

async fn read_inbound(
    mut source: futures::stream::SplitStream<WebSocket>,
    ctx: StreamContext,
    to_backend: mpsc::Sender<EncodedMessage>,
    limit: usize,
) -> InboundEnd {
    while let Some(frame) = source.next().await {
        let encoded = match frame {
            Ok(Message::Text(t)) if t.len() > limit => {
                return InboundEnd::TooBig(GatewayError::PayloadTooLarge { limit });
            }
            Ok(Message::Binary(b)) if b.len() > limit => {
                return InboundEnd::TooBig(GatewayError::PayloadTooLarge { limit });
            }
            Ok(Message::Text(t)) => ctx.encode_json(t.as_bytes()),
            Ok(Message::Binary(b)) => ctx.encode_json(&b),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Err(e) if too_big(&e) => return InboundEnd::TooBig(GatewayError::PayloadTooLarge { limit }),
            Ok(Message::Close(_)) | Err(_) => break,
        };
        match encoded {
            Ok(m) => {
                if to_backend.send(m).await.is_err() {
                    break;
                }
            }
            Err(e) => return InboundEnd::Bad(e),
        }
    }
    InboundEnd::Closed
}

/// Sends the final `{"error": …}` frame and closes with `code`.
async fn fail_with(sink: &mut SplitSink<WebSocket, Message>, status: serde_json::Value, code: u16) {
    let frame = serde_json::json!({ "error": status }).to_string();
    let _ = sink.send(Message::Text(frame.into())).await;
    let reason: String = status["message"].as_str().unwrap_or("").chars().take(120).collect();
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

async fn fail(sink: &mut SplitSink<WebSocket, Message>, status: serde_json::Value) {
    fail_with(sink, status, close_code::ERROR).await;
}

/// Tells the client why its side of the call ended, if it did not simply leave.
async fn inbound_ended(
    sink: &mut SplitSink<WebSocket, Message>,
    end: Result<InboundEnd, oneshot::error::RecvError>,
    pool: &DescriptorPool,
) {
    match end {
        Ok(InboundEnd::Bad(e)) => fail(sink, e.to_json(pool)).await,
        Ok(InboundEnd::TooBig(e)) => fail_with(sink, e.to_json(pool), close_code::SIZE).await,
        // The client left: dropping the call cancels it at the backend.
        _ => {}
    }
}

async fn finish(sink: &mut SplitSink<WebSocket, Message>) {
    let close = CloseFrame { code: close_code::NORMAL, reason: Utf8Bytes::default() };
    let _ = sink.send(Message::Close(Some(close))).await;
}

/// Everything one bidirectional call over a socket needs.
pub struct Call {
    /// Where the call goes.
    pub upstream: Upstream,
    /// The gRPC method path.
    pub path: PathAndQuery,
    /// Turns a response message's wire bytes into the JSON frame sent.
    pub convert: Box<dyn Fn(Bytes) -> Result<Bytes, tonic::Status> + Send + Sync>,
    /// Request metadata.
    pub meta: CallMeta,
    /// Encodes inbound frames, with the URL's fixed values.
    pub ctx: StreamContext,
    /// Descriptors for error details.
    pub pool: DescriptorPool,
    /// The largest inbound frame.
    pub limit: usize,
}

/// Runs one bidirectional call over an upgraded socket until either side ends it.
pub async fn run(socket: WebSocket, call: Call) {
    let Call { upstream, path, convert, meta, ctx, pool, limit } = call;
    let (mut sink, source) = socket.split();
    let (to_backend, requests) = mpsc::channel(INBOUND_QUEUE);
    let (end_tx, mut end_rx) = oneshot::channel();
    let reader = tokio::spawn(async move {
        let _ = end_tx.send(read_inbound(source, ctx, to_backend, limit).await);
    });
    let call = crate::call::bidi_streaming(&upstream, path, meta, ReceiverStream::new(requests).boxed(), convert);
    let reply = tokio::select! {
        r = call => r,
        end = &mut end_rx => {
            inbound_ended(&mut sink, end, &pool).await;
            reader.abort();
            return;
        }
    };
    let mut messages = match reply {
        Ok(reply) => reply.messages,
        Err(status) => {
            fail(&mut sink, GatewayError::Grpc(status).to_json(&pool)).await;
            reader.abort();
            return;
        }
    };
    loop {
        tokio::select! {
            // Every arm of this match leaves the loop, so the receiver is never polled again.
            end = &mut end_rx => {
                inbound_ended(&mut sink, end, &pool).await;
                break;
            }
            item = messages.next() => match item {
                Some(Ok(StreamItem::Message(json))) => {
                    let text = String::from_utf8_lossy(&json).into_owned();
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(StreamItem::Trailers(_))) => {}
                Some(Err(status)) => {
                    fail(&mut sink, status_json(status.code(), status.message(), status.details(), &pool)).await;
                    break;
                }
                None => {
                    finish(&mut sink).await;
                    break;
                }
            }
        }
    }
    reader.abort();
}
