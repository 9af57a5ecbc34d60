//! The connection to the gRPC backend: one multiplexed HTTP/2 connection, re-established on
//! demand when the backend restarts.
//!
//! This is hyper's pooled client used directly, rather than tonic's `Channel`: the channel hands
//! every call to a background worker task through a queue and back, and on a small machine
//! those two extra wake-ups per request cost more than the rest of the client.

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;
use tower::ServiceExt;
use tower::util::MapErr;

type Pooled = Client<HttpConnector, tonic::body::Body>;
type ToStatus = fn(hyper_util::client::legacy::Error) -> tonic::Status;

/// The backend, as a tonic client transport.
pub type Transport = MapErr<Pooled, ToStatus>;

/// Where and how to reach the backend; cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    transport: Transport,
    origin: Uri,
}

/// A call that could not reach the backend is UNAVAILABLE, the code clients retry on.
fn unavailable(e: hyper_util::client::legacy::Error) -> tonic::Status {
    let mut msg = format!("backend unavailable: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    tonic::Status::unavailable(msg)
}

impl Upstream {
    /// A lazily connecting client for `url` (`http://host:port`; the scheme may be left out), so
    /// the gateway starts, and answers 503, while the backend is down.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        let origin: Uri = url.parse()?;
        let mut connector = HttpConnector::new();
        // Nagle's algorithm meets delayed ACKs on loopback: without NODELAY p99 sits near 40 ms.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client: Pooled = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            // Windows of 1 MiB per stream and 2 MiB per connection keep an upload at disk speed
            // while bounding what a stream can have in flight (and so the gateway's memory).
            .http2_initial_stream_window_size(1 << 20)
            .http2_initial_connection_window_size(2 << 20)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(true)
            .build(connector);
        Ok(Upstream { transport: client.map_err(unavailable as ToStatus), origin })
    }

    /// A tonic client for one call.
    pub fn grpc(&self) -> tonic::client::Grpc<Transport> {
        tonic::client::Grpc::with_origin(self.transport.clone(), self.origin.clone())
    }
}
