//! Legacy passthrough: a request that migration mode does not send to gRPC goes to the legacy
//! REST API unchanged — method, path and query byte for byte, headers but the hop-by-hop ones
//! (with `X-Forwarded-For/-Proto/-Host` and `Forwarded` added), the body and the answer streamed
//! both ways, status and headers kept, nothing compressed on the way.
//!
//! Built on hyper-util's pooled HTTP/1.1 client. `--legacy-timeout` bounds the wait for the
//! answer's headers only: a streaming answer, once started, is not cut.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use gateway::connections::ClientInfo;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;
use std::time::Duration;
use tonic::Code;

/// The legacy API.
#[derive(Clone)]
pub struct Legacy {
    client: Client<Watched, Body>,
    /// `scheme://authority`, and a path prefix without its trailing slash.
    origin: String,
    /// The URL as configured, for messages.
    name: String,
    authority: HeaderValue,
    timeout: Duration,
    max_body: Option<u64>,
    trusted: Vec<IpNet>,
}

/// Why a legacy URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid --legacy URL {url:?}: {reason}")]
pub struct LegacyUrlError {
    url: String,
    reason: String,
}

/// Dials the legacy API and adds each socket to the set a spinning gateway worker watches
/// (`gateway::idle`): without it, the worker would spin past the legacy API's answer.
#[derive(Clone)]
struct Watched(HttpConnector);

impl tower::Service<Uri> for Watched {
    type Response = <HttpConnector as tower::Service<Uri>>::Response;
    type Error = <HttpConnector as tower::Service<Uri>>::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            gateway::idle::watch(io.inner());
            Ok(io)
        })
    }
}

/// Headers meaningful for one hop only (RFC 9110 §7.6.1), never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    for name in HOP_BY_HOP.iter().copied().chain(listed.iter().map(String::as_str)) {
        headers.remove(name);
    }
}

/// A google.rpc.Status body with an HTTP status of the migration layer's choosing.
pub fn status_response(http: StatusCode, code: Code, message: String) -> Response {
    let body = serde_json::json!({"code": code as i32, "message": message, "details": []});
    (http, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

impl Legacy {
    /// A client of the legacy API at `url`.
    pub fn new(
        url: &str,
        timeout: Duration,
        max_body: Option<u64>,
        trusted: Vec<IpNet>,
    ) -> Result<Self, LegacyUrlError> {
        let bad = |reason: &str| LegacyUrlError { url: url.to_owned(), reason: reason.to_owned() };
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// legacy APIs are supported"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
        let prefix = uri.path().trim_end_matches('/');
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new()).build(Watched(connector));
        Ok(Legacy {
            client,
            origin: format!("http://{authority}{prefix}"),
            name: url.trim_end_matches('/').to_owned(),
            authority: HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?,
            timeout,
            max_body,
            trusted,
        })
    }

    /// The legacy API's URL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `req` to the legacy API and returns its answer, streamed.
    pub async fn forward(&self, req: Request<Body>) -> Response {
        let (mut parts, body) = req.into_parts();
        let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let (Some(limit), Some(len)) = (self.max_body, declared)
            && len > limit
        {
            return status_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::InvalidArgument,
                format!("request body of {len} bytes exceeds the limit of {limit} bytes"),
            );
        }
        // The path and query exactly as the client sent them, never re-encoded.
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri: Uri = match format!("{}{target}", self.origin).parse() {
            Ok(u) => u,
            Err(e) => {
                return status_response(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidArgument,
                    format!("invalid request target: {e}"),
                );
            }
        };
        let forwarded = match parts.extensions.get::<ClientInfo>() {
            Some(client) => gateway::forwarded::forwarding_headers(&parts.headers, client, &self.trusted),
            None => Vec::new(),
        };
        strip_hop_by_hop(&mut parts.headers);
        for (name, value) in forwarded {
            parts.headers.insert(name, value);
        }
        parts.headers.insert(header::HOST, self.authority.clone());
        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = parts.headers;
        match tokio::time::timeout(self.timeout, self.client.request(out)).await {
            Err(_) => status_response(
                StatusCode::GATEWAY_TIMEOUT,
                Code::DeadlineExceeded,
                format!("legacy API {} did not answer within {:?}", self.name, self.timeout),
            ),
            Ok(Err(e)) => {
                tracing::warn!(legacy = %self.name, error = %e, "legacy request failed");
                status_response(
                    StatusCode::BAD_GATEWAY,
                    Code::Unavailable,
                    format!("legacy API {} is unavailable", self.name),
                )
            }
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let mut resp = Response::from_parts(parts, Body::new(body));
                // Relayed as it came: the gateway adds no compression.
                resp.extensions_mut().insert(gateway::dispatch::Verbatim);
                resp
            }
        }
    }
}
