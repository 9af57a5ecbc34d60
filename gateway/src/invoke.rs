//! The one small interface through which the runtime calls a method, whatever its types.
//!
//! The runtime hands an [`Invoker`] the request as JSON and gets JSON back; how the JSON becomes
//! a message is the invoker's business. [`Typed`] is the compiled-in kind: pbjson serde for JSON
//! and the prost codec on a tonic client, instantiated for each RPC by the generated glue. A
//! dynamic invoker (descriptor-driven, for services the binary was not built with) can implement
//! the same trait without any change to the runtime.

use crate::upstream::Upstream;
use crate::wire::{EncodedMessage, extract_field};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use http::uri::PathAndQuery;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;
use tonic::codec::Streaming;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;

/// Per-call settings the runtime derives from the HTTP request.
#[derive(Debug, Default, Clone)]
pub struct CallMeta {
    /// Request metadata (forwarded headers).
    pub metadata: MetadataMap,
    /// The gRPC deadline, sent to the backend as `grpc-timeout`.
    pub timeout: Option<Duration>,
}

/// A unary call's answer.
#[derive(Debug)]
pub struct UnaryOutput {
    /// Response headers and trailers.
    pub metadata: MetadataMap,
    /// The response (or its `response_body` field) as JSON.
    pub json: Vec<u8>,
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The request JSON does not fit the request message.
    #[error("invalid request: {0}")]
    Request(String),
    /// The backend answered with a non-OK status, or could not be reached.
    #[error(transparent)]
    Status(#[from] tonic::Status),
    /// The response could not be printed as JSON.
    #[error("cannot encode the response: {0}")]
    Response(String),
}

/// What the runtime wants of each streamed response message.
#[derive(Debug, Clone)]
pub enum Output {
    /// The message (or its `response_body` field, by JSON name) as JSON.
    Json(Option<String>),
    /// The raw value of one bytes field, by field number (raw-bytes downloads).
    RawField(u32),
}

/// One item of a response stream.
#[derive(Debug)]
pub enum StreamItem {
    /// A message, in the requested [`Output`] form.
    Message(Bytes),
    /// The call's trailers, after the last message of a successful call.
    Trailers(MetadataMap),
}

/// A streaming call's answer once the response headers have arrived.
pub struct MessageStream {
    /// The response headers.
    pub headers: MetadataMap,
    /// The messages; a non-OK status ends the stream as an `Err`.
    pub messages: BoxStream<'static, Result<StreamItem, tonic::Status>>,
}

/// Calls one RPC with JSON in and JSON out.
///
/// Request streams arrive already encoded ([`EncodedMessage`]): the runtime builds them from the
/// descriptor, so it can refuse a bad message before anything reaches the backend.
pub trait Invoker: Send + Sync + 'static {
    /// A unary call. `response_field` is the JSON name of the `response_body` field, if any.
    fn unary(
        &self,
        upstream: Upstream,
        meta: CallMeta,
        request: serde_json::Value,
        response_field: Option<String>,
    ) -> BoxFuture<'static, Result<UnaryOutput, InvokeError>>;

    /// A server-streaming call; resolves when the response headers arrive.
    fn server_streaming(
        &self,
        upstream: Upstream,
        meta: CallMeta,
        request: serde_json::Value,
        output: Output,
    ) -> BoxFuture<'static, Result<MessageStream, InvokeError>>;

    /// A client-streaming call; resolves with the single response.
    fn client_streaming(
        &self,
        upstream: Upstream,
        meta: CallMeta,
        requests: BoxStream<'static, EncodedMessage>,
        response_field: Option<String>,
    ) -> BoxFuture<'static, Result<UnaryOutput, InvokeError>>;

    /// A bidirectional call; resolves when the response headers arrive.
    fn bidi_streaming(
        &self,
        upstream: Upstream,
        meta: CallMeta,
        requests: BoxStream<'static, EncodedMessage>,
        output: Output,
    ) -> BoxFuture<'static, Result<MessageStream, InvokeError>>;
}

/// Invokers by full method name (`package.Service.Method`).
#[derive(Default, Clone)]
pub struct Registry {
    invokers: HashMap<String, Arc<dyn Invoker>>,
}

impl Registry {
    /// Registers an invoker for a method, replacing any earlier one.
    pub fn insert(&mut self, full_method: &str, invoker: Arc<dyn Invoker>) {
        self.invokers.insert(full_method.to_owned(), invoker);
    }

    /// Registers the typed invoker for `full_method` (`package.Service.Method`).
    pub fn typed<Req, Resp>(&mut self, full_method: &str)
    where
        Req: prost::Message + Default + DeserializeOwned + Send + Sync + 'static,
        Resp: prost::Message + Default + Serialize + Send + Sync + 'static,
    {
        self.insert(full_method, Arc::new(Typed::<Req, Resp>::new(full_method)));
    }

    /// The invoker of a method.
    pub fn get(&self, full_method: &str) -> Option<Arc<dyn Invoker>> {
        self.invokers.get(full_method).cloned()
    }
}

/// The compiled-in invoker of one RPC: pbjson for JSON, prost on the wire.
pub struct Typed<Req, Resp> {
    path: PathAndQuery,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Typed<Req, Resp> {
    /// `full_method` is `package.Service.Method`; the gRPC path is `/package.Service/Method`.
    pub fn new(full_method: &str) -> Self {
        let (service, method) = full_method.rsplit_once('.').expect("package.Service.Method");
        let path = PathAndQuery::try_from(format!("/{service}/{method}")).expect("valid gRPC path");
        Typed { path, _types: PhantomData }
    }
}

/// Prints a message, or only its `response_body` field.
fn encode_json<T: Serialize>(msg: &T, field: Option<String>) -> Result<Vec<u8>, InvokeError> {
    let err = |e: serde_json::Error| InvokeError::Response(e.to_string());
    match field {
        None => serde_json::to_vec(msg).map_err(err),
        Some(name) => {
            let mut v = serde_json::to_value(msg).map_err(err)?;
            let part = v.get_mut(&name).map(serde_json::Value::take).unwrap_or(serde_json::Value::Null);
            serde_json::to_vec(&part).map_err(err)
        }
    }
}

/// Decodes the request JSON, naming the offending field in the error (`age: invalid digit`).
fn decode_json<Req: DeserializeOwned>(request: serde_json::Value) -> Result<Req, InvokeError> {
    serde_path_to_error::deserialize(request).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            InvokeError::Request(e.inner().to_string())
        } else {
            InvokeError::Request(format!("{path}: {}", e.inner()))
        }
    })
}

/// A codec from an encoder and a decoder type, so one call can encode typed messages and keep
/// responses as bytes (raw downloads), or the other way round (streamed requests).
struct PairCodec<E, D>(PhantomData<fn() -> (E, D)>);

impl<E, D> Default for PairCodec<E, D> {
    fn default() -> Self {
        PairCodec(PhantomData)
    }
}

impl<E, D> Codec for PairCodec<E, D>
where
    E: Encoder<Error = Status> + Default + Send + 'static,
    E::Item: Send + 'static,
    D: Decoder<Error = Status> + Default + Send + 'static,
    D::Item: Send + 'static,
{
    type Encode = E::Item;
    type Decode = D::Item;
    type Encoder = E;
    type Decoder = D;

    fn encoder(&mut self) -> E {
        E::default()
    }

    fn decoder(&mut self) -> D {
        D::default()
    }
}

/// Writes messages the runtime already encoded.
#[derive(Default)]
struct PreEncoded;

impl Encoder for PreEncoded {
    type Item = EncodedMessage;
    type Error = Status;

    fn encode(&mut self, item: EncodedMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.len());
        item.write_to(dst);
        Ok(())
    }
}

/// Keeps response messages as their wire bytes.
#[derive(Default)]
struct WireBytes;

impl Decoder for WireBytes {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Turns a tonic response stream into [`StreamItem`]s, converting each message with `convert`
/// and ending with the trailers.
fn items<T, F>(stream: Streaming<T>, convert: F) -> BoxStream<'static, Result<StreamItem, Status>>
where
    T: Send + 'static,
    F: Fn(T) -> Result<Bytes, Status> + Send + 'static,
{
    let state = (Some(stream), convert);
    futures::stream::unfold(state, |(stream, convert)| async move {
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

/// Prints a streamed message as JSON, as an item-level error if it cannot be.
fn json_item<T: Serialize>(msg: T, field: &Option<String>) -> Result<Bytes, Status> {
    encode_json(&msg, field.clone()).map(Bytes::from).map_err(|e| Status::internal(e.to_string()))
}

/// A tonic client ready to call; one that cannot get ready is UNAVAILABLE to the caller.
async fn ready(upstream: &Upstream) -> Result<tonic::client::Grpc<Upstream>, InvokeError> {
    let mut grpc = upstream.grpc();
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("backend unavailable: {e}")))?;
    Ok(grpc)
}

impl<Req, Resp> Invoker for Typed<Req, Resp>
where
    Req: prost::Message + Default + DeserializeOwned + Send + Sync + 'static,
    Resp: prost::Message + Default + Serialize + Send + Sync + 'static,
{
    fn unary(
        &self,
        upstream: Upstream,
        meta: CallMeta,
        request: serde_json::Value,
        response_field: Option<String>,
    ) -> BoxFuture<'static, Result<UnaryOutput, InvokeError>> {
        let path = self.path.clone();
        Box::pin(async move {
            let msg: Req = decode_json(request)?;
            let req = make_request(meta, msg);
            let mut grpc = ready(&upstream).await?;
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            let (metadata, resp, _) = grpc.unary(req, path, codec).await?.into_parts();
            Ok(UnaryOutput { metadata, json: encode_json(&resp, response_field)? })
        })
    }

    fn server_streaming(
        &self,
        upstream: Upstream,
        meta: CallMeta,
        request: serde_json::Value,
        output: Output,
    ) -> BoxFuture<'static, Result<MessageStream, InvokeError>> {
        let path = self.path.clone();
        Box::pin(async move {
            let msg: Req = decode_json(request)?;
            let req = make_request(meta, msg);
            let mut grpc = ready(&upstream).await?;
            match output {
                Output::Json(field) => {
                    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
                    let (headers, stream, _) = grpc.server_streaming(req, path, codec).await?.into_parts();
                    Ok(MessageStream { headers, messages: items(stream, move |m| json_item(m, &field)) })
                }
                Output::RawField(number) => {
                    let codec = PairCodec::<tonic_prost::ProstEncoder<Req>, WireBytes>::default();
                    let (headers, stream, _) = grpc.server_streaming(req, path, codec).await?.into_parts();
                    let raw = move |b: Bytes| {
                        extract_field(&b, number).ok_or_else(|| Status::internal("undecodable response message"))
                    };
                    Ok(MessageStream { headers, messages: items(stream, raw) })
                }
            }
        })
    }

    fn client_streaming(
        &self,
        upstream: Upstream,
        meta: CallMeta,
        requests: BoxStream<'static, EncodedMessage>,
        response_field: Option<String>,
    ) -> BoxFuture<'static, Result<UnaryOutput, InvokeError>> {
        let path = self.path.clone();
        Box::pin(async move {
            // Dropping this future (a bad message, a client gone) resets the stream, or the
            // backend would wait for more and keep a half-done upload.
            let (mut grpc, req, _cancel) = open_stream(&upstream, meta, requests).await?;
            let codec = PairCodec::<PreEncoded, tonic_prost::ProstDecoder<Resp>>::default();
            let (metadata, resp, _) = grpc.client_streaming(req, path, codec).await?.into_parts();
            Ok(UnaryOutput { metadata, json: encode_json(&resp, response_field)? })
        })
    }

    fn bidi_streaming(
        &self,
        upstream: Upstream,
        meta: CallMeta,
        requests: BoxStream<'static, EncodedMessage>,
        output: Output,
    ) -> BoxFuture<'static, Result<MessageStream, InvokeError>> {
        let path = self.path.clone();
        Box::pin(async move {
            // The guard lives as long as the response stream: dropping either ends the call.
            let (mut grpc, req, cancel) = open_stream(&upstream, meta, requests).await?;
            let codec = PairCodec::<PreEncoded, tonic_prost::ProstDecoder<Resp>>::default();
            let (headers, stream, _) = grpc.streaming(req, path, codec).await?.into_parts();
            let field = match output {
                Output::Json(field) => field,
                Output::RawField(_) => None,
            };
            let convert = move |m| {
                let _ = &cancel;
                json_item(m, &field)
            };
            Ok(MessageStream { headers, messages: items(stream, convert) })
        })
    }
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

/// A ready client and a streaming request, with the guard that resets the stream when dropped
/// (unless it already ended cleanly).
async fn open_stream(
    upstream: &Upstream,
    meta: CallMeta,
    requests: BoxStream<'static, EncodedMessage>,
) -> Result<
    (tonic::client::Grpc<Upstream>, tonic::Request<BoxStream<'static, EncodedMessage>>, CancelOnDrop),
    InvokeError,
> {
    let mut req = make_request(meta, requests);
    let cancel = CancelOnDrop(Some(req.cancellation_handle()));
    Ok((ready(upstream).await?, req, cancel))
}

/// A tonic request with the call's metadata and deadline.
fn make_request<T>(meta: CallMeta, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::from_parts(meta.metadata, Default::default(), message);
    if let Some(t) = meta.timeout {
        req.set_timeout(t);
    }
    req
}
