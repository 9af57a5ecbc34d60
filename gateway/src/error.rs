//! The gateway's one error type. Every failure — its own or the backend's — leaves as a
//! google.rpc.Status JSON body with the matching HTTP status, built in [`GatewayError::to_response`].

use crate::status::{http_status, status_json};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use prost_reflect::DescriptorPool;
use std::time::Duration;
use tonic::Code;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No annotated route has this path.
    #[error("no route for {method} {path}")]
    NoRoute { method: Method, path: String },
    /// A route has this path, but not for this method.
    #[error("method {method} not allowed for {path}")]
    MethodNotAllowed { method: Method, path: String, allow: Vec<Method> },
    /// A malformed request: a body that is not a JSON object, undecodable input.
    #[error("{0}")]
    BadRequest(String),
    /// A value that does not fit its field (in the body, a stream message, the path or the
    /// query); carried to clients as a google.rpc.BadRequest field violation.
    #[error("invalid request: {0}")]
    InvalidMessage(crate::json::JsonError),
    /// The request body is larger than the configured limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The request's header section is larger than the configured limit.
    #[error("request headers of {size} bytes exceed the limit of {limit} bytes")]
    HeadersTooLarge { size: usize, limit: usize },
    /// The request body stopped arriving for longer than the configured pause.
    #[error("the request body stopped arriving for longer than the body read timeout")]
    BodyTimeout,
    /// The client is over its request rate (`--rate-limit`).
    #[error("too many requests from this client; slow down")]
    RateLimited,
    /// The gateway serves as many connections as it may.
    #[error("the gateway is serving its limit of {limit} connections; try again later")]
    TooManyConnections { limit: usize },
    /// The body's media type is not one the route reads.
    #[error("unsupported media type {0:?}; send application/json")]
    UnsupportedMediaType(String),
    /// The backend answered with a non-OK status (or could not be reached: UNAVAILABLE).
    #[error("{}", .0.message())]
    Grpc(tonic::Status),
    /// The call's deadline passed before the backend answered.
    #[error("deadline of {0:?} exceeded")]
    DeadlineExceeded(Duration),
    /// The backend's answer could not be printed as JSON.
    #[error("cannot encode the response as JSON: {0}")]
    ResponseEncoding(String),
}

impl GatewayError {
    /// The gRPC code the body carries.
    pub fn code(&self) -> Code {
        match self {
            GatewayError::NoRoute { .. } => Code::NotFound,
            GatewayError::MethodNotAllowed { .. } => Code::Unimplemented,
            GatewayError::BadRequest(_)
            | GatewayError::InvalidMessage(_)
            | GatewayError::PayloadTooLarge { .. }
            | GatewayError::HeadersTooLarge { .. }
            | GatewayError::UnsupportedMediaType(_) => Code::InvalidArgument,
            GatewayError::BodyTimeout => Code::DeadlineExceeded,
            GatewayError::TooManyConnections { .. } => Code::Unavailable,
            GatewayError::RateLimited => Code::ResourceExhausted,
            GatewayError::Grpc(s) => s.code(),
            GatewayError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            GatewayError::ResponseEncoding(_) => Code::Internal,
        }
    }

    /// The HTTP status: the status table for gRPC codes, and the gateway's own for its errors.
    pub fn http_status(&self) -> StatusCode {
        match self {
            GatewayError::NoRoute { .. } => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::BadRequest(_) | GatewayError::InvalidMessage(_) => StatusCode::BAD_REQUEST,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            // The client, not the backend, was slow: 408, not the 504 of DEADLINE_EXCEEDED.
            GatewayError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            other => http_status(other.code()),
        }
    }

    /// The google.rpc.Status body as JSON.
    pub fn to_json(&self, pool: &DescriptorPool) -> serde_json::Value {
        match self {
            GatewayError::Grpc(s) => status_json(s.code(), s.message(), s.details(), pool),
            GatewayError::InvalidMessage(e) if !e.field.is_empty() => {
                let mut body = status_json(self.code(), &self.to_string(), &[], pool);
                body["details"] = serde_json::json!([{
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": e.field, "description": e.description}],
                }]);
                body
            }
            other => status_json(other.code(), &other.to_string(), &[], pool),
        }
    }

    /// The whole HTTP response.
    pub fn to_response(&self, pool: &DescriptorPool) -> Response {
        let body = serde_json::to_vec(&self.to_json(pool)).unwrap_or_default();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = self.http_status();
        resp.extensions_mut().insert(crate::observe::GrpcCode(self.code()));
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // RFC 9110 §11.6.1: a 401 says how to authenticate.
        if self.code() == Code::Unauthenticated {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let GatewayError::MethodNotAllowed { allow, .. } = self {
            let list = allow.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::from_str(&list) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        resp
    }
}

/// The error for a request body that could not be read: a pause longer than the body read
/// timeout, or a broken connection.
pub fn body_read_error(e: &(dyn std::error::Error + 'static)) -> GatewayError {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<tower_http::timeout::TimeoutError>() {
            return GatewayError::BodyTimeout;
        }
        source = s.source();
    }
    GatewayError::BadRequest(format!("cannot read the request body: {e}"))
}

impl From<tonic::Status> for GatewayError {
    fn from(s: tonic::Status) -> Self {
        GatewayError::Grpc(s)
    }
}
