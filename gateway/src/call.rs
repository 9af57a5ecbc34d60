//! gRPC calls with messages as wire bytes: the runtime encodes requests from JSON and prints
//! responses itself (see [`crate::json`]), so one call path serves every method, compiled-in or
//! loaded at run time, and a response can be printed whole, by one field, or sliced raw.

use crate::upstream::Upstream;
use crate::wire::EncodedMessage;
use bytes::{Buf, Bytes};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::uri::PathAndQuery;
use std::time::Duration;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::metadata::MetadataMap;

/// Per-call settings the runtime derives from the HTTP request.
#[derive(Debug, Default, Clone)]
pub struct CallMeta {
    /// Request metadata (forwarded headers).
    pub metadata: MetadataMap,
    /// The gRPC deadline, sent to the backend as `grpc-timeout`.
    pub timeout: Option<Duration>,
}

/// One item of a response stream.
#[derive(Debug)]
pub enum StreamItem {
    /// A message, as the runtime asked for it (JSON, or raw bytes).
    Message(Bytes),
    /// The call's trailers, after the last message of a successful call.
    Trailers(MetadataMap),
}

/// A streaming call's answer once the response headers have arrived.
pub struct MessageStream {
    /// The response headers.
    pub headers: MetadataMap,
    /// The messages; a non-OK status ends the stream as an `Err`.
    pub messages: BoxStream<'static, Result<StreamItem, Status>>,
}

/// A unary (or client-streaming) call's answer.
#[derive(Debug)]
pub struct Reply {
    /// Response headers and trailers.
    pub metadata: MetadataMap,
    /// The response message, encoded.
    pub message: Bytes,
}

/// Writes messages the runtime already encoded; reads messages as their wire bytes.
#[derive(Default)]
struct WireCodec;

impl Codec for WireCodec {
    type Encode = EncodedMessage;
    type Decode = Bytes;
    type Encoder = WireCodec;
    type Decoder = WireCodec;

    fn encoder(&mut self) -> WireCodec {
        WireCodec
    }

    fn decoder(&mut self) -> WireCodec {
        WireCodec
    }
}

impl Encoder for WireCodec {
    type Item = EncodedMessage;
    type Error = Status;

    fn encode(&mut self, item: EncodedMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.len());
        item.write_to(dst);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        small_buffers()
    }
}

/// tonic's default 8 KiB buffers are allocated per call, off glibc's fast path; most messages
/// through a gateway are far smaller, and bigger ones grow the buffer as they arrive.
fn small_buffers() -> BufferSettings {
    BufferSettings::new(1024, 32 * 1024)
}

impl Decoder for WireCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }

    fn buffer_settings(&self) -> BufferSettings {
        small_buffers()
    }
}

/// A tonic request with the call's metadata and deadline.
fn request<T>(meta: CallMeta, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::from_parts(meta.metadata, Default::default(), message);
    if let Some(t) = meta.timeout {
        req.set_timeout(t);
    }
    req
}

/// Turns a response stream into [`StreamItem`]s, converting each message with `convert` and
/// ending with the trailers.
fn items<F>(stream: Streaming<Bytes>, convert: F) -> BoxStream<'static, Result<StreamItem, Status>>
where
    F: Fn(Bytes) -> Result<Bytes, Status> + Send + 'static,
{
    futures::stream::unfold((Some(stream), convert), |(stream, convert)| async move {
        let mut s = stream?;
        match s.message().await {
            Ok(Some(m)) => Some((convert(m).map(StreamItem::Message), (Some(s), convert))),
            Ok(None) => match s.trailers().await {
                Ok(t) => Some((Ok(StreamItem::Trailers(t.unwrap_or_default())), (None, convert))),
                Err(e) => Some((Err(e), (None, convert))),
            },
            Err(e) => Some((Err(e), (None, convert))),
        }
    })
    .boxed()
}

/// A unary call, spoken without tonic (see [`crate::grpc_http`]).
pub async fn unary(upstream: &Upstream, path: PathAndQuery, meta: CallMeta, message: &[u8]) -> Result<Reply, Status> {
    let response = upstream.unary(path, meta.metadata, meta.timeout, message).await?;
    crate::grpc_http::read_reply(response).await
}

/// A server-streaming call; resolves when the response headers arrive. `convert` turns each
/// message's wire bytes into what the client gets.
pub async fn server_streaming<F>(
    upstream: &Upstream,
    path: PathAndQuery,
    meta: CallMeta,
    message: Bytes,
    convert: F,
) -> Result<MessageStream, Status>
where
    F: Fn(Bytes) -> Result<Bytes, Status> + Send + 'static,
{
    let mut grpc = upstream.grpc();
    let req = request(meta, EncodedMessage(vec![message]));
    let (headers, stream, _) = grpc.server_streaming(req, path, WireCodec).await?.into_parts();
    Ok(MessageStream { headers, messages: items(stream, convert) })
}

/// A client-streaming call; resolves with the single response.
///
/// Dropping the future (a bad message, a client gone) resets the stream, or the backend would
/// wait for more and keep, say, a half-done upload.
pub async fn client_streaming(
    upstream: &Upstream,
    path: PathAndQuery,
    meta: CallMeta,
    requests: BoxStream<'static, EncodedMessage>,
) -> Result<Reply, Status> {
    let mut req = request(meta, requests);
    let _cancel = CancelOnDrop(Some(req.cancellation_handle()));
    let mut grpc = upstream.grpc();
    let (metadata, message, _) = grpc.client_streaming(req, path, WireCodec).await?.into_parts();
    Ok(Reply { metadata, message })
}

/// A bidirectional call; resolves when the response headers arrive. The stream is reset when
/// the returned messages are dropped.
pub async fn bidi_streaming<F>(
    upstream: &Upstream,
    path: PathAndQuery,
    meta: CallMeta,
    requests: BoxStream<'static, EncodedMessage>,
    convert: F,
) -> Result<MessageStream, Status>
where
    F: Fn(Bytes) -> Result<Bytes, Status> + Send + 'static,
{
    let mut req = request(meta, requests);
    let cancel = CancelOnDrop(Some(req.cancellation_handle()));
    let mut grpc = upstream.grpc();
    let (headers, stream, _) = grpc.streaming(req, path, WireCodec).await?.into_parts();
    let convert = move |m| {
        let _ = &cancel;
        convert(m)
    };
    Ok(MessageStream { headers, messages: items(stream, convert) })
}

/// Resets a request stream (RST_STREAM) when dropped, unless it already ended cleanly.
struct CancelOnDrop(Option<tonic::CancellationHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.cancel();
        }
    }
}
