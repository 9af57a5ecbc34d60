//! gRPC over HTTP/2 as the unary path speaks it without tonic's client: the request's headers,
//! the length-prefixed message, and a response read into one message and its status
//! (PROTOCOL-HTTP2.md, http-grpc-status-mapping.md).
//!
//! Why not tonic's `Grpc::unary`: it rebuilds the URI through a string, runs every message
//! through a streaming decoder with its own buffers, clones the trailers to look for the status
//! and keeps a 5 KB future per call; on GetUser that was about a tenth of the gateway's CPU.
//! Streaming calls still go through tonic, whose decoder earns its keep there.

use crate::call::Reply;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use std::io::Read;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

/// The largest response message taken (after decompression), as tonic's default.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

// Names, not strings: a lookup by string parses it first, on every call.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Base64 of binary metadata, padded or not: gRPC implementations differ.
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Headers a caller's metadata may not set: the transport's own (tonic drops the same ones).
const RESERVED: [HeaderName; 4] =
    [header::USER_AGENT, GRPC_MESSAGE, HeaderName::from_static("grpc-message-type"), GRPC_STATUS];

/// The request headers of a call: the caller's metadata, then the transport's.
pub fn request_headers(
    metadata: MetadataMap,
    timeout: Option<Duration>,
    compression: Option<CompressionEncoding>,
) -> HeaderMap {
    let mut h = metadata.into_headers();
    // Looked for by comparing names (cheap) before removing (a hash and a probe each): callers'
    // metadata seldom holds any of them.
    if h.keys().any(|k| RESERVED.contains(k)) {
        for name in &RESERVED {
            h.remove(name);
        }
    }
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(GRPC_ACCEPT_ENCODING, HeaderValue::from_static("gzip,zstd"));
    if let Some(c) = compression {
        h.insert(GRPC_ENCODING, HeaderValue::from_static(encoding_name(c)));
    }
    match timeout {
        Some(t) => {
            h.insert(GRPC_TIMEOUT, last_timeout_value(t));
        }
        None => {
            h.remove(GRPC_TIMEOUT);
        }
    }
    h
}

/// The `grpc-encoding` name of a request compression; the gateway offers only these two.
fn encoding_name(c: CompressionEncoding) -> &'static str {
    match c {
        CompressionEncoding::Zstd => "zstd",
        _ => "gzip",
    }
}

/// [`timeout_value`], kept per thread for the last timeout asked: nearly every call has the
/// gateway's default deadline, and a kept value is shared where a new one is formatted and
/// allocated.
fn last_timeout_value(t: Duration) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Duration, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((kept, value)) if *kept == t => value.clone(),
        _ => last.insert((t, timeout_value(t))).1.clone(),
    })
}

/// A `grpc-timeout` value: the finest unit whose count fits the 8 digits the spec allows.
pub fn timeout_value(t: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let secs = u128::from(t.as_secs());
    let (n, unit) = [(t.as_nanos(), 'n'), (t.as_micros(), 'u'), (t.as_millis(), 'm'), (secs, 'S'), (secs / 60, 'M')]
        .into_iter()
        .find(|(n, _)| *n <= MAX)
        .unwrap_or(((secs / 3600).min(MAX), 'H'));
    let mut digits = itoa::Buffer::new();
    let mut text = [0u8; 40];
    let n = digits.format(n).as_bytes();
    text[..n.len()].copy_from_slice(n);
    text[n.len()] = unit as u8;
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&text[..=n.len()]))
        .expect("digits and a letter are a valid header")
}

/// One message, length-prefixed (compressed with `compression`, if any).
pub fn frame(message: &[u8], compression: Option<CompressionEncoding>) -> Result<Bytes, Status> {
    let compressed;
    let (flag, payload) = match compression {
        None => (0u8, message),
        Some(c) => {
            compressed = compress(c, message)?;
            (1u8, compressed.as_slice())
        }
    };
    let len = u32::try_from(payload.len()).map_err(|_| Status::resource_exhausted("request message over 4 GiB"))?;
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flag);
    out.put_u32(len);
    out.put_slice(payload);
    Ok(out.freeze())
}

fn compress(c: CompressionEncoding, message: &[u8]) -> Result<Vec<u8>, Status> {
    use std::io::Write;
    let failed = |e: std::io::Error| Status::internal(format!("cannot compress the request message: {e}"));
    match encoding_name(c) {
        "zstd" => zstd::bulk::compress(message, 0).map_err(failed),
        _ => {
            let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(message.len() / 2 + 32), Default::default());
            gz.write_all(message).map_err(failed)?;
            gz.finish().map_err(failed)
        }
    }
}

/// The status a set of headers (trailers, or a trailers-only response) carries, if any. Unlike
/// tonic's `Status::from_header_map`, bad details are dropped rather than panicking, and the
/// status' metadata are the other headers, moved rather than copied.
pub fn status_of(headers: &mut HeaderMap) -> Option<Status> {
    let code = Code::from_bytes(headers.get(&GRPC_STATUS)?.as_bytes());
    headers.remove(&GRPC_STATUS);
    let message = match headers.remove(&GRPC_MESSAGE) {
        Some(m) => percent_encoding::percent_decode(m.as_bytes()).decode_utf8_lossy().into_owned(),
        None => String::new(),
    };
    let details = headers.remove(&GRPC_DETAILS).and_then(|d| {
        use base64::Engine as _;
        BASE64.decode(d.as_bytes()).ok()
    });
    let metadata = MetadataMap::from_headers(std::mem::take(headers));
    Some(Status::with_details_and_metadata(code, message, details.map(Bytes::from).unwrap_or_default(), metadata))
}

/// Drops a `grpc-status-details-bin` that is not base64. tonic's client (the streaming calls)
/// reads it with an `expect`, so a backend sending a bad one would panic the task reading the
/// stream; without it the status keeps its code and message.
pub fn drop_bad_details(headers: &mut HeaderMap) {
    use base64::Engine as _;
    if headers.get(&GRPC_DETAILS).is_some_and(|d| BASE64.decode(d.as_bytes()).is_err()) {
        tracing::debug!("dropped a grpc-status-details-bin that is not base64");
        headers.remove(&GRPC_DETAILS);
    }
}

/// Whether the headers say OK, looked at without building a status.
fn is_ok(headers: &HeaderMap) -> Option<bool> {
    headers.get(&GRPC_STATUS).map(|v| v.as_bytes() == b"0")
}

/// The gRPC code for a response that is not gRPC, from its HTTP status.
fn code_of_http(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// A unary response, read whole: its single message and its metadata (headers and trailers).
/// The body's error (a reset stream) becomes a status the way tonic maps it.
pub async fn read_reply<B>(response: http::Response<B>) -> Result<Reply, Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    if let Some(ok) = is_ok(&headers) {
        // Trailers-only: no message can follow.
        return Err(match ok {
            true => Status::internal("the backend answered OK without a response message"),
            false => status_of(&mut headers).expect("grpc-status is there"),
        });
    }
    if parts.status != StatusCode::OK {
        return Err(Status::new(
            code_of_http(parts.status),
            format!("the backend answered HTTP {} without a gRPC status", parts.status),
        ));
    }
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']));
    if !grpc {
        return Err(Status::unknown("the backend's response is not gRPC (content-type is not application/grpc)"));
    }
    let mut body = std::pin::pin!(body);
    let mut data = Collected::default();
    let mut trailers = loop {
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => data.push(chunk)?,
                Err(frame) => break frame.into_trailers().unwrap_or_default(),
            },
            Some(Err(e)) => return Err(Status::from_error(Box::new(e))),
            None => break HeaderMap::new(),
        }
    };
    match is_ok(&trailers) {
        Some(true) => {}
        Some(false) => return Err(status_of(&mut trailers).expect("grpc-status is there")),
        None => return Err(Status::unknown("the backend's response ended without a gRPC status")),
    }
    trailers.remove(&GRPC_STATUS);
    trailers.remove(&GRPC_MESSAGE);
    let message = data.message(headers.get(&GRPC_ENCODING))?;
    for (name, value) in trailers {
        if let Some(name) = name {
            headers.append(name, value);
        }
    }
    Ok(Reply { metadata: MetadataMap::from_headers(headers), message })
}

/// The DATA of a unary response. Usually one chunk holds the whole message, which is then used
/// as it is; a message over several chunks is gathered.
#[derive(Default)]
struct Collected {
    first: Bytes,
    more: Option<BytesMut>,
}

impl Collected {
    fn len(&self) -> usize {
        self.more.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    fn push(&mut self, chunk: Bytes) -> Result<(), Status> {
        if chunk.is_empty() {
            return Ok(());
        }
        match &mut self.more {
            Some(more) => more.extend_from_slice(&chunk),
            None if self.first.is_empty() => self.first = chunk,
            None => {
                let mut more = BytesMut::with_capacity(self.first.len() + chunk.len());
                more.extend_from_slice(&self.first);
                more.extend_from_slice(&chunk);
                self.more = Some(more);
            }
        }
        // A message over the limit is refused as soon as its prefix says so, and a body longer
        // than its one message as soon as it is.
        let prefix = self.bytes();
        if prefix.len() >= 5 {
            let declared = (&prefix[1..5]).get_u32() as usize;
            if declared > MAX_MESSAGE {
                return Err(too_large(declared));
            }
            if prefix.len() > 5 + declared {
                return Err(Status::internal("the backend sent more than one message for a unary call"));
            }
        }
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        self.more.as_deref().unwrap_or(&self.first)
    }

    /// The message, decompressed with `encoding` if it is flagged compressed.
    fn message(self, encoding: Option<&HeaderValue>) -> Result<Bytes, Status> {
        let len = self.len();
        if len == 0 {
            return Err(Status::internal("the backend answered OK without a response message"));
        }
        let mut all = match self.more {
            Some(more) => more.freeze(),
            None => self.first,
        };
        if len < 5 || len < 5 + (&all[1..5]).get_u32() as usize {
            return Err(Status::internal("the backend's response ended inside a message"));
        }
        let flag = all[0];
        all.advance(5);
        match flag {
            0 => Ok(all),
            1 => decompress(encoding, &all),
            f => Err(Status::internal(format!("the backend's message has an invalid compression flag ({f})"))),
        }
    }
}

fn too_large(n: usize) -> Status {
    Status::resource_exhausted(format!("the backend's response message is {n} bytes, over the limit of {MAX_MESSAGE}"))
}

fn decompress(encoding: Option<&HeaderValue>, data: &[u8]) -> Result<Bytes, Status> {
    let failed = |e: std::io::Error| Status::internal(format!("cannot decompress the backend's message: {e}"));
    let mut out = Vec::with_capacity(data.len() * 2);
    let limit = MAX_MESSAGE as u64 + 1;
    match encoding.map(HeaderValue::as_bytes) {
        Some(b"gzip") => flate2::read::GzDecoder::new(data).take(limit).read_to_end(&mut out).map_err(failed)?,
        Some(b"zstd") => {
            zstd::stream::read::Decoder::new(data).map_err(failed)?.take(limit).read_to_end(&mut out).map_err(failed)?
        }
        Some(other) => {
            return Err(Status::internal(format!(
                "the backend compressed its message with {:?}, which the gateway does not accept",
                String::from_utf8_lossy(other)
            )));
        }
        None => return Err(Status::internal("the backend's message is flagged compressed without a grpc-encoding")),
    };
    if out.len() > MAX_MESSAGE {
        return Err(too_large(out.len()));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    fn response(
        headers: &[(&str, &str)],
        chunks: Vec<Bytes>,
        trailers: Option<&[(&str, &str)]>,
    ) -> http::Response<impl http_body::Body<Data = Bytes, Error = std::io::Error> + use<>> {
        let mut frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> =
            chunks.into_iter().map(|c| Ok(http_body::Frame::data(c))).collect();
        if let Some(t) = trailers {
            frames.push(Ok(http_body::Frame::trailers(map(t))));
        }
        let mut r = http::Response::new(StreamBody::new(futures::stream::iter(frames)));
        *r.headers_mut() = map(headers);
        r
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    const GRPC: (&str, &str) = ("content-type", "application/grpc");
    const OK: &[(&str, &str)] = &[("grpc-status", "0"), ("x-trailer", "t")];

    fn read(r: http::Response<impl http_body::Body<Data = Bytes, Error = std::io::Error>>) -> Result<Reply, Status> {
        futures::executor::block_on(read_reply(r))
    }

    #[test]
    fn one_message_in_one_chunk_comes_back_with_headers_and_trailers() {
        let framed = frame(b"hello", None).unwrap();
        let reply = read(response(&[GRPC, ("x-head", "h")], vec![framed], Some(OK))).unwrap();
        assert_eq!(reply.message, Bytes::from_static(b"hello"));
        assert_eq!(reply.metadata.get("x-head").unwrap(), "h");
        assert_eq!(reply.metadata.get("x-trailer").unwrap(), "t");
        assert!(reply.metadata.get("grpc-status").is_none());
    }

    #[test]
    fn a_message_split_over_chunks_is_gathered() {
        let framed = frame(b"split message", None).unwrap();
        let chunks = vec![framed.slice(..3), framed.slice(3..9), framed.slice(9..)];
        assert_eq!(read(response(&[GRPC], chunks, Some(OK))).unwrap().message, Bytes::from_static(b"split message"));
    }

    #[test]
    fn compressed_messages_are_decompressed_both_ways() {
        for c in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
            let framed = frame(b"squeezed squeezed squeezed", Some(c)).unwrap();
            assert_eq!(framed[0], 1);
            let r = response(&[GRPC, ("grpc-encoding", encoding_name(c))], vec![framed], Some(OK));
            assert_eq!(read(r).unwrap().message, Bytes::from_static(b"squeezed squeezed squeezed"));
        }
    }

    #[test]
    fn an_error_status_in_trailers_wins_with_its_details_and_metadata() {
        let t = [
            ("grpc-status", "5"),
            ("grpc-message", "no%20such%20user"),
            ("grpc-status-details-bin", "AQI"),
            ("x-why", "w"),
        ];
        let s = read(response(&[GRPC], vec![], Some(&t))).unwrap_err();
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "no such user");
        assert_eq!(s.details(), &[1, 2]);
        assert_eq!(s.metadata().get("x-why").unwrap(), "w");
    }

    #[test]
    fn bad_details_are_dropped_not_a_panic() {
        let t = [("grpc-status", "13"), ("grpc-status-details-bin", "!!not base64!!")];
        let s = read(response(&[GRPC], vec![], Some(&t))).unwrap_err();
        assert_eq!(s.code(), Code::Internal);
        assert!(s.details().is_empty());
    }

    #[test]
    fn only_bad_details_are_dropped_before_tonic_reads_them() {
        let mut bad = map(&[("grpc-status", "13"), ("grpc-status-details-bin", "!!not base64!!")]);
        drop_bad_details(&mut bad);
        assert!(bad.get("grpc-status-details-bin").is_none());
        assert_eq!(tonic::Status::from_header_map(&bad).unwrap().code(), Code::Internal);
        for good in ["AQI", "AQI="] {
            let mut ok = map(&[("grpc-status", "5"), ("grpc-status-details-bin", good)]);
            drop_bad_details(&mut ok);
            assert_eq!(ok.get("grpc-status-details-bin").unwrap(), good);
        }
    }

    #[test]
    fn trailers_only_answers_are_statuses() {
        let s = read(response(&[GRPC, ("grpc-status", "7"), ("grpc-message", "no")], vec![], None)).unwrap_err();
        assert_eq!((s.code(), s.message()), (Code::PermissionDenied, "no"));
        let s = read(response(&[GRPC, ("grpc-status", "0")], vec![], None)).unwrap_err();
        assert_eq!(s.code(), Code::Internal);
    }

    #[test]
    fn answers_that_are_not_grpc_map_their_http_status() {
        let mut r = http::Response::new(Full::new(Bytes::from_static(b"<html>")).map_err(|n| match n {}));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let s = futures::executor::block_on(read_reply(r)).unwrap_err();
        assert_eq!(s.code(), Code::Unavailable);
        let s =
            read(response(&[("content-type", "text/html")], vec![Bytes::from_static(b"<html>")], None)).unwrap_err();
        assert_eq!(s.code(), Code::Unknown);
        let s = read(response(&[("content-type", "application/grpc-web")], vec![], Some(OK))).unwrap_err();
        assert_eq!(s.code(), Code::Unknown);
        for ct in ["application/grpc+proto", "application/grpc; charset=utf-8"] {
            let framed = frame(b"m", None).unwrap();
            assert!(read(response(&[("content-type", ct)], vec![framed], Some(OK))).is_ok(), "{ct}");
        }
    }

    #[test]
    fn broken_bodies_are_internal_errors() {
        let framed = frame(b"hello", None).unwrap();
        let cut = read(response(&[GRPC], vec![framed.slice(..7)], Some(OK))).unwrap_err();
        assert_eq!(cut.code(), Code::Internal);
        let two = read(response(&[GRPC], vec![framed.clone(), framed.clone()], Some(OK))).unwrap_err();
        assert_eq!(two.code(), Code::Internal);
        let none = read(response(&[GRPC], vec![], Some(OK))).unwrap_err();
        assert_eq!(none.code(), Code::Internal);
        let no_status = read(response(&[GRPC], vec![framed], None)).unwrap_err();
        assert_eq!(no_status.code(), Code::Unknown);
    }

    #[test]
    fn an_oversized_message_is_refused_from_its_prefix() {
        let mut prefix = BytesMut::new();
        prefix.put_u8(0);
        prefix.put_u32(MAX_MESSAGE as u32 + 1);
        let s = read(response(&[GRPC], vec![prefix.freeze()], Some(OK))).unwrap_err();
        assert_eq!(s.code(), Code::ResourceExhausted);
    }

    #[test]
    fn timeouts_use_the_finest_unit_that_fits_eight_digits() {
        assert_eq!(timeout_value(Duration::from_millis(250)), "250000u");
        assert_eq!(timeout_value(Duration::from_millis(99)), "99000000n");
        assert_eq!(timeout_value(Duration::from_secs(30)), "30000000u");
        assert_eq!(timeout_value(Duration::from_secs(3600 * 24 * 365)), "31536000S");
        let parsed = crate::metadata::parse_grpc_timeout(timeout_value(Duration::from_secs(30)).to_str().unwrap());
        assert_eq!(parsed, Some(Duration::from_secs(30)));
    }

    #[test]
    fn reserved_metadata_give_way_to_the_transport() {
        let mut md = MetadataMap::new();
        md.insert("user-agent", "evil".parse().unwrap());
        md.insert("grpc-timeout", "1n".parse().unwrap());
        md.insert("x-keep", "k".parse().unwrap());
        let h = request_headers(md, None, Some(CompressionEncoding::Gzip));
        assert!(h.get("user-agent").is_none() && h.get("grpc-timeout").is_none());
        assert_eq!(h.get("x-keep").unwrap(), "k");
        assert_eq!(h.get("te").unwrap(), "trailers");
        assert_eq!(h.get("grpc-encoding").unwrap(), "gzip");
    }
}
