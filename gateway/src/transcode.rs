//! The request path of the gateway: route, bind, call, answer — one function per step, and one
//! place ([`Gateway::handle`]) where any error becomes a Status response.

use crate::api::{Api, Table};
use crate::bind::{build_request, url_values};
use crate::call::{CallMeta, Reply, StreamItem};
use crate::connections::ClientInfo;
use crate::dispatch::Dispatcher;
use crate::error::GatewayError;
use crate::forwarded::forwarding_headers;
use crate::metadata::{REQUEST_ID_HEADER, deadline, request_id, request_metadata, response_headers};
use crate::routes::Route;
use crate::rules::{Binding, CallKind};
use crate::streaming::{
    RequestFormat, ResponseFormat, guard_input, ndjson_lines, raw_pieces, request_format, response_body,
    response_format,
};
use crate::template::Captures;
use crate::wire::{EncodedMessage, RawEncoder, StreamContext, extract_field};
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use prost_reflect::DescriptorPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    /// The API: routes, descriptors, backends; swapped whole on reload.
    api: Arc<Api>,
    /// What takes part in answering beside the gRPC routes (migration mode), if anything.
    dispatcher: Option<Arc<dyn Dispatcher>>,
    /// Per-request settings.
    options: Options,
}

/// The gateway's per-request settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Deadline of unary calls without a Grpc-Timeout header.
    pub unary_timeout: Option<Duration>,
    /// Largest unary request body, and largest streamed message.
    pub max_body_size: usize,
    /// Proxies whose forwarding headers are kept.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Log one line per request.
    pub access_log: bool,
}

/// What the call paths need to know of the request beyond its parts: the id it goes by, and
/// when it arrived (deadlines count from then).
#[derive(Clone, Copy)]
struct RequestInfo<'a> {
    id: &'a HeaderValue,
    arrived: Instant,
}

/// Prints one response message of `output` as JSON (or only its field `json_field`), as the
/// item of a response stream.
fn json_item(
    output: Arc<crate::wire_json::Plan>,
    json_field: Option<String>,
) -> impl Fn(Bytes) -> Result<Bytes, tonic::Status> {
    move |wire| {
        crate::json::print_wire(&output, &wire, json_field.as_deref()).map(Bytes::from).map_err(tonic::Status::internal)
    }
}

impl Gateway {
    /// Serves `api`.
    pub fn new(api: Arc<Api>, options: Options) -> Self {
        // The recorder must be in place before the first request: the handles requests record
        // into are made once and kept.
        let _ = switchyard_common::metrics::handle();
        Gateway { api, dispatcher: None, options }
    }

    /// Lets `dispatcher` decide who answers each request (see [`crate::dispatch`]).
    pub fn with_dispatcher(mut self, dispatcher: Arc<dyn Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// The dispatcher, if any.
    pub fn dispatcher(&self) -> Option<&Arc<dyn Dispatcher>> {
        self.dispatcher.as_ref()
    }

    /// The API being served.
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// Answers one HTTP request. Never fails: errors become google.rpc.Status responses here.
    pub async fn handle(self: Arc<Self>, mut req: Request<Body>) -> Response {
        let mut seen = crate::observe::Seen::new(&req);
        // The table stays the same for the whole request, whatever a reload does meanwhile.
        let table = self.api.table();
        let found = table.routes.find(req.method(), req.uri().path());
        let route = found.as_ref().ok().map(|(route, _)| route.clone());
        seen.trace(&mut req, route.as_deref());
        // One place awaits the gRPC answer: a future awaited in two branches is laid out twice
        // in this one, and the whole of it is copied when the request's future is boxed.
        let given = match self.dispatcher.clone() {
            None => Err(req),
            Some(dispatcher) => dispatcher.dispatch(req, route.as_deref(), crate::dispatch::GrpcSide(self.clone())),
        };
        let mut resp = match given {
            Ok(answer) => answer.await,
            Err(req) => self.answer(&table, req, found, seen.started()).await,
        };
        seen.done(route.as_deref(), &mut resp, self.options.access_log);
        resp
    }

    /// Answers one HTTP request through its gRPC route, whatever a dispatcher would decide.
    pub(crate) async fn handle_grpc(self: Arc<Self>, req: Request<Body>) -> Response {
        let table = self.api.table();
        let found = table.routes.find(req.method(), req.uri().path());
        self.answer(&table, req, found, Instant::now()).await
    }

    /// Transcodes a request whose route was looked up; any error becomes its Status response.
    /// Deadlines count from `arrived`, when the request came in, not from when the backend is
    /// called.
    async fn answer(
        &self,
        table: &Table,
        req: Request<Body>,
        found: Result<(Arc<Route>, Captures), GatewayError>,
        arrived: Instant,
    ) -> Response {
        let rid = request_id(req.headers());
        let info = RequestInfo { id: &rid, arrived };
        let mut resp = match self.transcode(table, req, found, info).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(error = %e, request_id = ?rid, "request failed");
                e.to_response(&table.pool)
            }
        };
        resp.headers_mut().insert(REQUEST_ID_HEADER, rid);
        resp
    }

    async fn transcode(
        &self,
        table: &Table,
        req: Request<Body>,
        found: Result<(Arc<Route>, Captures), GatewayError>,
        info: RequestInfo<'_>,
    ) -> Result<Response, GatewayError> {
        let (parts, body) = req.into_parts();
        let (binding, captures) = found?;
        match binding.kind {
            CallKind::Unary => {
                let body = match binding.body {
                    crate::rules::BodySpec::None => None,
                    _ => read_json_body(&parts.headers, body, self.options.max_body_size).await?,
                };
                let request = self.encode(&binding, build_request(&binding, captures, parts.uri.query(), body)?)?;
                self.unary(&binding, &parts, info, request).await
            }
            // Streams are boxed: this future is laid out for its largest branch, and unary calls,
            // the common case, should not carry (and copy) a stream's state.
            CallKind::ServerStreaming => {
                let request = self.encode(&binding, build_request(&binding, captures, parts.uri.query(), None)?)?;
                Box::pin(self.server_stream(&binding, &parts, info, request, &table.pool)).await
            }
            CallKind::ClientStreaming => {
                let fixed = url_values(&binding, captures, parts.uri.query())?;
                Box::pin(self.client_stream(&binding, &parts, info, body, fixed)).await
            }
            CallKind::Bidi => {
                let fixed = url_values(&binding, captures, parts.uri.query())?;
                Box::pin(self.bidi(binding, parts, info, fixed, &table.pool)).await
            }
        }
    }

    /// The request message from its JSON, encoded for the wire.
    fn encode(&self, binding: &Binding, request: serde_json::Value) -> Result<Bytes, GatewayError> {
        crate::json::encode_value(&binding.method.input(), request)
            .map(Bytes::from)
            .map_err(GatewayError::InvalidMessage)
    }

    /// The call's metadata, with the forwarding headers when the client's address is known.
    fn metadata(&self, parts: &Parts, rid: &HeaderValue) -> Result<tonic::metadata::MetadataMap, GatewayError> {
        let forwarded = match parts.extensions.get::<ClientInfo>() {
            Some(client) => forwarding_headers(&parts.headers, client, &self.options.trusted_proxies),
            None => Vec::new(),
        };
        request_metadata(&parts.headers, rid, &forwarded)
    }

    /// A unary answer as JSON, with the call's metadata as headers.
    fn reply(&self, binding: &Binding, reply: Reply) -> Result<Response, GatewayError> {
        let json = crate::json::print_wire(&binding.output, &reply.message, binding.response_json.as_deref())
            .map_err(GatewayError::ResponseEncoding)?;
        Ok(json_response(json, &reply.metadata))
    }

    async fn unary(
        &self,
        binding: &Route,
        parts: &Parts,
        info: RequestInfo<'_>,
        request: Bytes,
    ) -> Result<Response, GatewayError> {
        let timeout = deadline(&parts.headers, self.options.unary_timeout)?;
        let meta = CallMeta { metadata: self.metadata(parts, info.id)?, timeout };
        // A retry builds its metadata again rather than every call cloning it up front.
        let again = || CallMeta { metadata: self.metadata(parts, info.id).unwrap_or_default(), timeout };
        let call = move || async move { retrying(binding, meta, again, request).await.map_err(GatewayError::Grpc) };
        let reply = within(timeout, info.arrived, call).await?;
        self.reply(binding, reply)
    }

    /// Server streaming: NDJSON, SSE or raw bytes, written as messages arrive.
    async fn server_stream(
        &self,
        binding: &Route,
        parts: &Parts,
        info: RequestInfo<'_>,
        request: Bytes,
        pool: &DescriptorPool,
    ) -> Result<Response, GatewayError> {
        let timeout = deadline(&parts.headers, None)?;
        let meta = CallMeta { metadata: self.metadata(parts, info.id)?, timeout };
        let format = response_format(&parts.headers, binding.raw.is_some());
        let started = info.arrived;
        let path = binding.grpc_path.clone();
        let upstream = binding.upstream.pick();
        // The headers come back before the first message; a call that fails before that gets
        // the status table's HTTP status.
        let reply = within(timeout, started, move || async move {
            let call = match (format, &binding.raw) {
                (ResponseFormat::Raw, Some(raw)) => {
                    let number = raw.bytes_field.number();
                    let raw = move |b: Bytes| {
                        extract_field(&b, number).ok_or_else(|| tonic::Status::internal("undecodable response message"))
                    };
                    crate::call::server_streaming(upstream, path, meta, request, raw).await
                }
                _ => {
                    let convert = json_item(binding.output.clone(), binding.response_json.clone());
                    crate::call::server_streaming(upstream, path, meta, request, convert).await
                }
            };
            call.map_err(GatewayError::Grpc)
        })
        .await?;
        let messages = match timeout {
            Some(t) => with_deadline(reply.messages, started + t),
            None => reply.messages,
        };
        let trailers = parts
            .headers
            .get_all(header::TE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("trailers")));
        let mut resp = Response::new(response_body(messages, format, pool.clone(), trailers));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        if format == ResponseFormat::Sse {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        // Proxies such as nginx would otherwise hold the stream back to buffer it.
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response_headers(&reply.headers, h);
        Ok(resp)
    }

    /// Client streaming: an NDJSON body of messages, or a raw body cut into messages.
    async fn client_stream(
        &self,
        binding: &Route,
        parts: &Parts,
        info: RequestInfo<'_>,
        body: Body,
        fixed: serde_json::Value,
    ) -> Result<Response, GatewayError> {
        let timeout = deadline(&parts.headers, None)?;
        let meta = CallMeta { metadata: self.metadata(parts, info.id)?, timeout };
        let input = binding.method.input();
        let messages: BoxStream<'static, Result<EncodedMessage, GatewayError>> =
            match request_format(&parts.headers, binding.raw.is_some())? {
                RequestFormat::Ndjson => {
                    let ctx = StreamContext::new(input, binding.body.clone(), fixed)?;
                    ndjson_lines(body, self.options.max_body_size)
                        .map(move |line| line.and_then(|l| ctx.encode_json(&l)))
                        .boxed()
                }
                RequestFormat::Raw => {
                    let raw = binding.raw.as_ref().expect("raw format needs the raw option");
                    let enc = RawEncoder::new(&input, fixed, &raw.bytes_field, raw.counter_field.as_ref())?;
                    raw_pieces(body).enumerate().map(move |(n, piece)| piece.map(|p| enc.encode(n as u64, p))).boxed()
                }
            };
        let (requests, mut bad_input) = guard_input(messages);
        let call = crate::call::client_streaming(binding.upstream.pick(), binding.grpc_path.clone(), meta, requests);
        let reply = within(timeout, info.arrived, move || async move {
            tokio::select! {
                r = call => r.map_err(GatewayError::Grpc),
                // A bad message: dropping the call cancels it, so the backend keeps nothing.
                Ok(e) = &mut bad_input => Err(e),
            }
        })
        .await?;
        self.reply(binding, reply)
    }

    /// Bidirectional: a WebSocket upgrade of the annotated route.
    async fn bidi(
        &self,
        binding: Arc<Route>,
        mut parts: Parts,
        info: RequestInfo<'_>,
        fixed: serde_json::Value,
        pool: &DescriptorPool,
    ) -> Result<Response, GatewayError> {
        let ws = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.map_err(|e| {
            GatewayError::BadRequest(format!(
                "{} is a bidirectional stream and needs a WebSocket upgrade: {e}",
                parts.uri.path()
            ))
        })?;
        let ctx = StreamContext::new(binding.method.input(), binding.body.clone(), fixed)?;
        let meta = CallMeta { metadata: self.metadata(&parts, info.id)?, timeout: None };
        let call = crate::websocket::Call {
            upstream: binding.upstream.pick().clone(),
            path: binding.grpc_path.clone(),
            convert: Box::new(json_item(binding.output.clone(), None)),
            meta,
            ctx,
            pool: pool.clone(),
            limit: self.options.max_body_size,
        };
        // The socket reads messages up to twice the limit whole, so that one over the limit is
        // answered with a 1009 close the client can read: refused mid-frame, the unread rest
        // would make the close a TCP reset. Beyond twice the limit the socket refuses it itself.
        let socket_limit = self.options.max_body_size.saturating_mul(2);
        Ok(ws
            .max_message_size(socket_limit)
            .max_frame_size(socket_limit)
            .on_upgrade(move |socket| crate::websocket::run(socket, call)))
    }
}

/// A unary call, tried again (on the next backend of the set, after a short jittered pause) when
/// it failed with UNAVAILABLE and may safely run twice: idempotent methods only, never after an
/// overload the gateway raised itself, and always within the caller's deadline (see [`within`]).
async fn retrying(
    route: &Route,
    meta: CallMeta,
    again: impl Fn() -> CallMeta,
    request: Bytes,
) -> Result<Reply, tonic::Status> {
    use backon::{ExponentialBuilder, Retryable};
    let mut first = Some(meta);
    let mut call = || {
        let meta = first.take().unwrap_or_else(&again);
        crate::call::unary(route.upstream.pick(), route.grpc_path.clone(), meta, &request)
    };
    if !route.idempotent {
        return call().await;
    }
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(200))
        .with_max_times(2)
        .with_jitter();
    call.retry(backoff)
        .when(|s: &tonic::Status| {
            s.code() == tonic::Code::Unavailable && !s.metadata().contains_key(crate::upstream::OVERLOAD)
        })
        .await
}

/// Runs a call within the client's deadline (if any), started at `started`.
///
/// A deadline that has already passed fails before anything is sent, as gRPC clients do; one
/// that passes during the call is DEADLINE_EXCEEDED — also when the backend, enforcing the same
/// deadline, got there first and answered CANCELLED.
///
/// The call comes as a function that makes it, and its future goes into a box of its own as
/// it is made: it is most of a request's future, which is otherwise copied whole each time it
/// moves (into the timeout, into the layers' futures, into the task) — a tenth of the
/// instructions per request went to those copies.
async fn within<T, F>(timeout: Option<Duration>, started: Instant, call: impl FnOnce() -> F) -> Result<T, GatewayError>
where
    F: Future<Output = Result<T, GatewayError>>,
{
    let Some(t) = timeout else { return Box::pin(call()).await };
    let Some(left) = t.checked_sub(started.elapsed()).filter(|left| !left.is_zero()) else {
        return Err(GatewayError::DeadlineExceeded(t));
    };
    match tokio::time::timeout(left, Box::pin(call())).await {
        Err(_) => Err(GatewayError::DeadlineExceeded(t)),
        Ok(Err(GatewayError::Grpc(s))) if s.code() == tonic::Code::Cancelled && started.elapsed() >= t => {
            Err(GatewayError::DeadlineExceeded(t))
        }
        Ok(r) => r,
    }
}

/// Ends a response stream with DEADLINE_EXCEEDED when the deadline passes.
fn with_deadline(
    messages: BoxStream<'static, Result<StreamItem, tonic::Status>>,
    deadline: Instant,
) -> BoxStream<'static, Result<StreamItem, tonic::Status>> {
    async_stream::stream! {
        let mut messages = messages;
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                item = messages.next() => match item {
                    Some(item) => yield item,
                    None => break,
                },
                _ = &mut sleep => {
                    yield Err(tonic::Status::deadline_exceeded("deadline exceeded"));
                    break;
                }
            }
        }
    }
    .boxed()
}

/// A 200 JSON response with the call's metadata as headers.
fn json_response(json: Vec<u8>, metadata: &tonic::metadata::MetadataMap) -> Response {
    let mut resp = Response::new(Body::from(json));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response_headers(metadata, resp.headers_mut());
    resp
}

/// Media types a JSON route reads. `application/x-www-form-urlencoded` is what `curl -d` sends
/// when the user forgets `-H 'Content-Type: application/json'`; its body is still read as JSON.
fn json_media_type(headers: &HeaderMap) -> Result<(), GatewayError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = ct.to_str().unwrap_or("");
    let mime = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let ok = mime.is_empty()
        || mime == "application/json"
        || mime == "text/json"
        || (mime.starts_with("application/") && mime.ends_with("+json"))
        || mime == "application/x-www-form-urlencoded";
    if ok { Ok(()) } else { Err(GatewayError::UnsupportedMediaType(text.to_owned())) }
}

/// Reads a size-limited JSON body; `None` when it is empty.
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Option<serde_json::Value>, GatewayError> {
    json_media_type(headers)?;
    let bytes = read_limited(headers, body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    crate::json::parse_value(&bytes).map(Some).map_err(GatewayError::InvalidMessage)
}

/// Reads a whole body, refusing more than `limit` bytes (early, when Content-Length says so).
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::PayloadTooLarge { limit }),
        Err(e) => Err(crate::error::body_read_error(&*e)),
    }
}
