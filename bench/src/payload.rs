//! How big each call is on the wire: the HTTP body against the gRPC message with its 5-byte
//! frame, plain and gzipped, with headers reported apart.

use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;
use serde::Serialize;
use std::io::Write;

/// Sizes of one message in both encodings, in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    /// What is measured, e.g. "GetUser response (User)".
    pub what: String,
    pub json: usize,
    pub json_gzip: usize,
    /// The protobuf message plus the 5-byte gRPC frame header.
    pub grpc: usize,
    pub grpc_gzip: usize,
}

fn gzip(bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        return 0;
    }
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory").len()
}

/// Sizes of a message that the gateway prints as JSON.
pub fn sizes<M: Message + serde::Serialize>(what: &str, msg: &M) -> Sizes {
    let json = serde_json::to_vec(msg).expect("printable");
    let proto = msg.encode_to_vec();
    Sizes {
        what: what.to_owned(),
        json: json.len(),
        json_gzip: gzip(&json),
        grpc: proto.len() + 5,
        grpc_gzip: gzip(&proto) + 5,
    }
}

/// Sizes of a request that REST sends without a body (the fields are in the path).
pub fn path_only<M: Message>(what: &str, msg: &M) -> Sizes {
    let proto = msg.encode_to_vec();
    Sizes { what: what.to_owned(), json: 0, json_gzip: 0, grpc: proto.len() + 5, grpc_gzip: gzip(&proto) + 5 }
}

/// Header bytes of a typical call, uncompressed (HTTP/1.1 text, or the HTTP/2 header list by
/// RFC 7541's size rule, name + value + 32 per field); HPACK shrinks repeated headers on a
/// reused HTTP/2 connection to a few bytes each.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderSizes {
    pub rest_http1_request: usize,
    pub rest_http1_response: usize,
    pub grpc_request: usize,
    pub grpc_response_and_trailers: usize,
}

fn h2_list(fields: &[(&str, &str)]) -> usize {
    fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}

/// Header sizes for a GetUser call to `authority`, with the response headers REST really got.
pub fn header_sizes(authority: &str, user_id: &str, rest_response_headers: usize) -> HeaderSizes {
    let request =
        format!("GET /api/v1/users/{user_id} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\r\n");
    HeaderSizes {
        rest_http1_request: request.len(),
        rest_http1_response: rest_response_headers,
        grpc_request: h2_list(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/user.v1.UserService/GetUser"),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("user-agent", "tonic/0.14.9"),
        ]),
        grpc_response_and_trailers: h2_list(&[
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("date", "Wed, 25 Nov 2026 12:00:00 GMT"),
            ("grpc-status", "0"),
        ]),
    }
}
