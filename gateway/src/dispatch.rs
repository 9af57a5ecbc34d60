//! The seam through which something beside the gRPC routes takes part in answering requests —
//! migration mode, which sends some requests to the legacy REST API, shadows others, and answers
//! every request no gRPC binding matches.
//!
//! The gateway asks its [`Dispatcher`] about each request before transcoding it, telling it
//! which route (if any) matched. The dispatcher either gives the request back (the gRPC route
//! answers) or answers it itself; to compare answers it can replay a request on the gRPC side
//! through [`GrpcSide`].

use crate::routes::Route;
use crate::transcode::Gateway;
use axum::body::Body;
use axum::response::Response;
use futures::future::BoxFuture;
use http::Request;
use std::sync::Arc;

/// Decides, per request, whether the gRPC route answers or the dispatcher does.
pub trait Dispatcher: Send + Sync + 'static {
    /// `route` is the gRPC route the request matched, `None` when no binding matches its method
    /// and path. `Err(req)` gives the request back to the gRPC route; `Ok` is the answer.
    #[allow(
        clippy::result_large_err,
        reason = "the request goes back by value: boxing it would cost an allocation on every gRPC request"
    )]
    fn dispatch(
        &self,
        req: Request<Body>,
        route: Option<&Route>,
        grpc: GrpcSide,
    ) -> Result<BoxFuture<'static, Response>, Request<Body>>;

    /// What the dispatcher reports at `/_switchyard/migration`.
    fn status(&self) -> serde_json::Value;

    /// Re-reads the dispatcher's configuration (on SIGHUP); on failure the old one stays.
    fn reload(&self) -> Result<(), String>;
}

/// The gateway's gRPC side, to answer a request as if no dispatcher were there.
#[derive(Clone)]
pub struct GrpcSide(pub(crate) Arc<Gateway>);

impl GrpcSide {
    /// Transcodes `req` to gRPC and returns the answer.
    pub async fn call(&self, req: Request<Body>) -> Response {
        self.0.clone().handle_grpc(req).await
    }
}

/// Marks a response the gateway must relay as it is (a legacy answer): no compression added.
#[derive(Debug, Clone, Copy)]
pub struct Verbatim;
