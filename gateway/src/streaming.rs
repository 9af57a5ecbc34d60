//! Streaming calls over plain HTTP: how response streams are written (NDJSON, SSE, raw bytes)
//! and how request bodies become message streams (NDJSON, raw bytes).
//!
//! Responses are written as messages arrive: every message that is already waiting goes into
//! one write, and the body is polled only as fast as the client reads, so a slow reader slows
//! the backend stream (HTTP/2 flow control) instead of filling memory.

use crate::call::StreamItem;
use crate::error::GatewayError;
use crate::metadata::{TRAILER_PREFIX, prefixed_headers};
use crate::status::status_json;
use crate::wire::EncodedMessage;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderMap, header};
use http_body::Frame;
use http_body_util::StreamBody;
use prost_reflect::DescriptorPool;
use tokio::sync::oneshot;

/// How a response stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `application/x-ndjson`: `{"result": ...}` per line, `{"error": ...}` last on failure.
    Ndjson,
    /// `text/event-stream`: `data: ...` per event, `event: error` last on failure.
    Sse,
    /// `application/octet-stream`: the bytes field of each message, back to back.
    Raw,
}

impl ResponseFormat {
    /// The response's Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            ResponseFormat::Ndjson => "application/x-ndjson",
            ResponseFormat::Sse => "text/event-stream",
            ResponseFormat::Raw => "application/octet-stream",
        }
    }

    /// What goes before and after each message's JSON; `None` for raw bytes, which are sent
    /// as they are.
    fn framing(self) -> Option<(&'static [u8], &'static [u8])> {
        match self {
            ResponseFormat::Ndjson => Some((b"{\"result\":", b"}\n")),
            ResponseFormat::Sse => Some((b"data: ", b"\n\n")),
            ResponseFormat::Raw => None,
        }
    }
}

fn media_types(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Picks the response format from `Accept`: SSE when asked for, raw bytes when asked for and the
/// method has the raw option, NDJSON otherwise.
pub fn response_format(headers: &HeaderMap, raw_available: bool) -> ResponseFormat {
    let accept = media_types(headers, header::ACCEPT);
    if accept.iter().any(|m| m == "text/event-stream") {
        ResponseFormat::Sse
    } else if raw_available && accept.iter().any(|m| m == "application/octet-stream") {
        ResponseFormat::Raw
    } else {
        ResponseFormat::Ndjson
    }
}

/// How a request stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFormat {
    /// One JSON message per line.
    Ndjson,
    /// The body cut into the bytes field of successive messages.
    Raw,
}

/// Picks the request format from `Content-Type`.
pub fn request_format(headers: &HeaderMap, raw_available: bool) -> Result<RequestFormat, GatewayError> {
    let ct = media_types(headers, header::CONTENT_TYPE);
    match ct.first().map(String::as_str) {
        None
        | Some(
            "application/x-ndjson"
            | "application/jsonl"
            | "application/json-seq"
            | "application/json"
            | "text/plain"
            | "application/x-www-form-urlencoded",
        ) => Ok(RequestFormat::Ndjson),
        Some("application/octet-stream") if raw_available => Ok(RequestFormat::Raw),
        Some(other) => Err(GatewayError::UnsupportedMediaType(other.to_owned())),
    }
}

/// The lines of an NDJSON body, read as they arrive; blank lines are skipped and a line longer
/// than `max_line` bytes is refused (streams have no total limit, only a per-message one).
pub fn ndjson_lines(body: Body, max_line: usize) -> BoxStream<'static, Result<Bytes, GatewayError>> {
    async_stream::stream! {
        let mut body = body.into_data_stream();
        let mut buf = BytesMut::new();
        let mut scanned = 0;
        loop {
            while let Some(i) = buf[scanned..].iter().position(|b| *b == b'\n') {
                let mut line = buf.split_to(scanned + i + 1);
                scanned = 0;
                line.truncate(line.len() - 1);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                if line.iter().any(|b| !b.is_ascii_whitespace()) {
                    yield Ok(line.freeze());
                }
            }
            scanned = buf.len();
            if buf.len() > max_line {
                yield Err(GatewayError::PayloadTooLarge { limit: max_line });
                return;
            }
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    yield Err(crate::error::body_read_error(&e));
                    return;
                }
                None => break,
            }
        }
        if buf.iter().any(|b| !b.is_ascii_whitespace()) {
            yield Ok(buf.freeze());
        }
    }
    .boxed()
}

/// Pieces below this size are merged with the next (few large messages beat many small ones).
pub const RAW_MIN_PIECE: usize = 32 * 1024;
/// Pieces are cut to at most this size (well under gRPC's 4 MiB message limit).
pub const RAW_MAX_PIECE: usize = 256 * 1024;

/// A raw body cut into pieces of [`RAW_MIN_PIECE`] to [`RAW_MAX_PIECE`] bytes (the last may be
/// smaller), read as it arrives.
pub fn raw_pieces(body: Body) -> BoxStream<'static, Result<Bytes, GatewayError>> {
    async_stream::stream! {
        let mut body = body.into_data_stream();
        let mut acc = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let mut chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    yield Err(crate::error::body_read_error(&e));
                    return;
                }
            };
            if acc.is_empty() {
                // Large frames go on without a copy.
                while chunk.len() >= RAW_MIN_PIECE {
                    let n = chunk.len().min(RAW_MAX_PIECE);
                    yield Ok(chunk.split_to(n));
                }
            }
            acc.extend_from_slice(&chunk);
            while acc.len() >= RAW_MIN_PIECE {
                let n = acc.len().min(RAW_MAX_PIECE);
                yield Ok(acc.split_to(n).freeze());
            }
        }
        if !acc.is_empty() {
            yield Ok(acc.freeze());
        }
    }
    .boxed()
}

/// Hands the first error of a request stream to the returned receiver and then never ends the
/// stream: the backend must see the call cancelled (the caller drops it), not a clean end that
/// would commit half an upload.
pub fn guard_input(
    input: BoxStream<'static, Result<EncodedMessage, GatewayError>>,
) -> (BoxStream<'static, EncodedMessage>, oneshot::Receiver<GatewayError>) {
    let (tx, rx) = oneshot::channel();
    let stream = async_stream::stream! {
        let mut input = input;
        let mut tx = Some(tx);
        while let Some(item) = input.next().await {
            match item {
                Ok(m) => yield m,
                Err(e) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(e);
                    }
                    futures::future::pending::<()>().await;
                }
            }
        }
    };
    (stream.boxed(), rx)
}

/// How long an event stream may stay silent before a keep-alive comment is sent.
pub const SSE_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// Writes a response stream in `format`; with `trailers`, the gRPC trailers follow as
/// `Grpc-Trailer-<name>` HTTP trailers.
pub fn response_body(
    messages: BoxStream<'static, Result<StreamItem, tonic::Status>>,
    format: ResponseFormat,
    pool: DescriptorPool,
    trailers: bool,
) -> Body {
    let stream = async_stream::stream! {
        let mut batches = messages.ready_chunks(256);
        loop {
            let next = if format == ResponseFormat::Sse {
                // An idle event stream (a quiet watch) gets a comment now and then, so proxies
                // and browsers do not take it for a dead connection.
                match tokio::time::timeout(SSE_HEARTBEAT, batches.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        yield Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n")));
                        continue;
                    }
                }
            } else {
                batches.next().await
            };
            let Some(batch) = next else { break };
            let framing = format.framing();
            // Sized for the whole batch up front: grown as it filled, it was copied each time.
            let needed = framing.map_or(0, |(open, close)| {
                let message = |item: &Result<StreamItem, tonic::Status>| match item {
                    Ok(StreamItem::Message(m)) => open.len() + m.len() + close.len(),
                    _ => 0,
                };
                batch.iter().map(message).sum()
            });
            let mut buf = BytesMut::with_capacity(needed);
            let mut failed = None;
            for item in batch {
                match item {
                    Ok(StreamItem::Message(m)) => match framing {
                        Some((open, close)) => {
                            buf.extend_from_slice(open);
                            buf.extend_from_slice(&m);
                            buf.extend_from_slice(close);
                        }
                        None => {
                            if !buf.is_empty() {
                                yield Ok(Frame::data(buf.split().freeze()));
                            }
                            if !m.is_empty() {
                                yield Ok(Frame::data(m));
                            }
                        }
                    },
                    Ok(StreamItem::Trailers(md)) => {
                        if trailers {
                            if !buf.is_empty() {
                                yield Ok(Frame::data(buf.split().freeze()));
                            }
                            let mut map = HeaderMap::new();
                            prefixed_headers(&md, &mut map, TRAILER_PREFIX);
                            if !map.is_empty() {
                                yield Ok(Frame::trailers(map));
                            }
                        }
                    }
                    Err(status) => {
                        failed = Some(status);
                        break;
                    }
                }
            }
            if let Some(status) = failed {
                let json = status_json(status.code(), status.message(), status.details(), &pool);
                match format {
                    ResponseFormat::Ndjson => {
                        buf.extend_from_slice(&serde_json::to_vec(&serde_json::json!({"error": json})).unwrap_or_default());
                        buf.extend_from_slice(b"\n");
                    }
                    ResponseFormat::Sse => {
                        buf.extend_from_slice(b"event: error\ndata: ");
                        buf.extend_from_slice(&serde_json::to_vec(&json).unwrap_or_default());
                        buf.extend_from_slice(b"\n\n");
                    }
                    ResponseFormat::Raw => {
                        if !buf.is_empty() {
                            yield Ok(Frame::data(buf.split().freeze()));
                        }
                        // Bytes cannot carry an error: break the transfer so the client sees it
                        // incomplete rather than a short file.
                        yield Err(std::io::Error::other(format!("stream failed: {}", status.message())));
                        return;
                    }
                }
                yield Ok(Frame::data(buf.freeze()));
                return;
            }
            if !buf.is_empty() {
                yield Ok(Frame::data(buf.freeze()));
            }
        }
    };
    Body::new(StreamBody::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn negotiates_formats() {
        assert_eq!(response_format(&HeaderMap::new(), true), ResponseFormat::Ndjson);
        assert_eq!(response_format(&headers(header::ACCEPT, "text/event-stream"), false), ResponseFormat::Sse);
        assert_eq!(response_format(&headers(header::ACCEPT, "application/octet-stream"), true), ResponseFormat::Raw);
        assert_eq!(
            response_format(&headers(header::ACCEPT, "application/octet-stream"), false),
            ResponseFormat::Ndjson
        );
        assert_eq!(
            response_format(&headers(header::ACCEPT, "text/html, text/event-stream;q=0.9"), false),
            ResponseFormat::Sse
        );
        assert_eq!(request_format(&HeaderMap::new(), true).unwrap(), RequestFormat::Ndjson);
        assert_eq!(
            request_format(&headers(header::CONTENT_TYPE, "application/octet-stream"), true).unwrap(),
            RequestFormat::Raw
        );
        assert!(request_format(&headers(header::CONTENT_TYPE, "application/octet-stream"), false).is_err());
        assert!(request_format(&headers(header::CONTENT_TYPE, "image/png"), true).is_err());
    }

    async fn collect(s: BoxStream<'static, Result<Bytes, GatewayError>>) -> Vec<Result<Bytes, String>> {
        s.map(|r| r.map_err(|e| e.to_string())).collect().await
    }

    fn body_of(parts: &[&'static [u8]]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Body::from_stream(futures::stream::iter(chunks))
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_event_streams_get_keep_alive_comments() {
        use http_body_util::BodyExt;
        let pool = DescriptorPool::new();
        let mut body = response_body(futures::stream::pending().boxed(), ResponseFormat::Sse, pool.clone(), false);
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame, Bytes::from_static(b": keep-alive\n\n"));
        // NDJSON has no comments: a quiet NDJSON stream stays quiet.
        let mut body = response_body(futures::stream::pending().boxed(), ResponseFormat::Ndjson, pool, false);
        let waited = tokio::time::timeout(SSE_HEARTBEAT * 3, body.frame()).await;
        assert!(waited.is_err());
    }

    #[tokio::test]
    async fn ndjson_lines_across_frames() {
        let lines = collect(ndjson_lines(body_of(&[b"{\"a\":1}\n{\"b\"", b":2}\r\n\n  \n{\"c\":3}"]), 100)).await;
        let lines: Vec<Bytes> = lines.into_iter().map(Result::unwrap).collect();
        assert_eq!(lines, [&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
        let long = collect(ndjson_lines(body_of(&[b"0123456789", b"0123456789"]), 15)).await;
        assert!(long.last().unwrap().is_err());
    }

    #[tokio::test]
    async fn raw_pieces_keep_every_byte_in_bounded_pieces() {
        let big: &'static [u8] = Box::leak(vec![7u8; RAW_MAX_PIECE * 2 + 10].into_boxed_slice());
        let small: &'static [u8] = b"tiny";
        let pieces: Vec<Bytes> =
            collect(raw_pieces(body_of(&[small, big, small]))).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(pieces.iter().map(Bytes::len).sum::<usize>(), big.len() + 8);
        assert!(pieces.iter().all(|p| p.len() <= RAW_MAX_PIECE));
        assert!(pieces[..pieces.len() - 1].iter().all(|p| p.len() >= RAW_MIN_PIECE));
    }
}
