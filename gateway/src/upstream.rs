//! The connections to one gRPC backend: a small pool of HTTP/2 connections, a bound on the calls
//! in flight, and errors that name the backend.
//!
//! Why a pool of our own rather than hyper-util's client or tonic's `Channel`: those carry every
//! call over one connection, so one connection-level failure (a GOAWAY, a reset, a backend
//! restart) ends every client's call at once. Here calls are spread over `connections`
//! connections (least busy first), another opens when all of them carry as many streams as the
//! peer's SETTINGS_MAX_CONCURRENT_STREAMS allows, and a closed connection is replaced by the next
//! call. A call that could not be sent at all is tried once more on a fresh connection; a call
//! that was sent is never repeated (it may have had effects). Live streams stay on the
//! connection they started on.
//!
//! The pool is hyper's connection API used directly: no background worker hop per call (tonic's
//! `Channel` costs two extra wake-ups per request on a small machine).

use bytes::Bytes;
use http::Uri;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How to reach and load one backend.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// Connections kept open (more open while every one is at the peer's stream limit).
    pub connections: usize,
    /// Calls (live streams included) in flight at once.
    pub max_concurrency: usize,
    /// Calls that may wait for a free slot; beyond that a call fails at once with UNAVAILABLE.
    pub queue: usize,
    /// HTTP/2 PING interval on idle connections, so a dead peer is noticed.
    pub keepalive: Option<Duration>,
    /// Largest response header list accepted from the backend.
    pub max_response_headers: u32,
    /// Compression of request messages, if any (responses are accepted compressed anyway).
    pub compression: Option<tonic::codec::CompressionEncoding>,
    /// TLS for `https://` backends: the CA to trust, and a client certificate for mutual TLS.
    pub tls: Option<Arc<switchyard_common::tls::ClientTls>>,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            connections: 2,
            max_concurrency: 1024,
            queue: 512,
            keepalive: Some(Duration::from_secs(20)),
            max_response_headers: 64 * 1024,
            compression: None,
            tls: None,
        }
    }
}

/// One backend; cheap to clone, and a tonic transport (`tower::Service`).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL as configured, for messages and logs.
    name: String,
    origin: Uri,
    /// `host:port` to dial.
    address: String,
    /// The name the backend's certificate must carry, for `https://` backends.
    tls_name: Option<rustls::pki_types::ServerName<'static>>,
    options: UpstreamOptions,
    conns: Mutex<Vec<Arc<Conn>>>,
    /// Serialises connection set-up, so a burst of calls opens one connection, not one each.
    connecting: tokio::sync::Mutex<()>,
    /// A connection is being opened in the background.
    growing: AtomicBool,
    /// Spreads calls over equally busy connections.
    next: AtomicUsize,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// What the last health check said: [`UNKNOWN`], [`SERVING`] or [`NOT_SERVING`].
    health: std::sync::atomic::AtomicU8,
}

/// Not checked yet.
pub const UNKNOWN: u8 = 0;
/// The last check said SERVING.
pub const SERVING: u8 = 1;
/// The last check failed, or said something else; or a connection just failed.
pub const NOT_SERVING: u8 = 2;

/// Marks a status the gateway raised itself because a backend was at capacity: never retried
/// (retrying an overload makes it worse).
pub const OVERLOAD: &str = "x-switchyard-overload";

/// One HTTP/2 connection and what it carries.
struct Conn {
    send: http2::SendRequest<tonic::body::Body>,
    /// Calls on this connection whose response has not ended.
    in_flight: AtomicUsize,
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS, as the connection last saw it.
    max_streams: Arc<AtomicUsize>,
}

impl Conn {
    fn has_room(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) < self.max_streams.load(Ordering::Relaxed).max(1)
    }
}

/// A snapshot of an upstream's load.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamStats {
    /// The backend's URL.
    pub url: String,
    /// What the last health check said; none before the first.
    pub serving: Option<bool>,
    /// Open HTTP/2 connections.
    pub connections: usize,
    /// Calls in flight, live streams included.
    pub in_flight: usize,
    /// Calls waiting for a slot.
    pub waiting: usize,
}

/// Why an upstream URL is not usable.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid backend URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
}

impl Upstream {
    /// A lazily connecting upstream for `url` (`http://host:port`, or `https://` with TLS
    /// options; the scheme may be left out), so the gateway starts, and answers 503, while the
    /// backend is down.
    pub fn new(url: &str, options: UpstreamOptions) -> Result<Self, UpstreamError> {
        let full = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        let bad = |reason: &str| UpstreamError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let origin: Uri = full.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let authority = origin.authority().ok_or_else(|| bad("no host"))?;
        let (port, tls_name) = match origin.scheme_str() {
            Some("http") => (80, None),
            Some("https") if options.tls.is_some() => {
                let host = authority.host().trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| bad(&format!("not a TLS server name: {e}")))?;
                (443, Some(name))
            }
            Some("https") => return Err(bad("https:// needs the gateway's backend TLS settings")),
            _ => return Err(bad("only http:// and https:// backends are supported")),
        };
        let address = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(port));
        let options = UpstreamOptions { max_concurrency: options.max_concurrency.max(1), ..options };
        let slots = Arc::new(Semaphore::new(options.max_concurrency));
        Ok(Upstream {
            inner: Arc::new(Inner {
                name: full.trim_end_matches('/').to_owned(),
                origin,
                address,
                tls_name,
                options,
                conns: Mutex::new(Vec::new()),
                connecting: tokio::sync::Mutex::new(()),
                growing: AtomicBool::new(false),
                next: AtomicUsize::new(0),
                slots,
                waiting: AtomicUsize::new(0),
                health: std::sync::atomic::AtomicU8::new(UNKNOWN),
            }),
        })
    }

    /// The backend's URL, as clients may see it in error messages.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The backend's origin (scheme and authority).
    pub fn origin(&self) -> &Uri {
        &self.inner.origin
    }

    /// A tonic client for one call.
    pub fn grpc(&self) -> tonic::client::Grpc<Upstream> {
        use tonic::codec::CompressionEncoding::{Gzip, Zstd};
        let mut grpc = tonic::client::Grpc::with_origin(self.clone(), self.inner.origin.clone())
            .accept_compressed(Gzip)
            .accept_compressed(Zstd);
        if let Some(c) = self.inner.options.compression {
            grpc = grpc.send_compressed(c);
        }
        grpc
    }

    /// What the last health check said ([`UNKNOWN`], [`SERVING`], [`NOT_SERVING`]).
    pub fn health(&self) -> u8 {
        self.inner.health.load(Ordering::Relaxed)
    }

    /// Asks the backend's grpc.health.v1 service whether it is serving, and remembers it.
    pub async fn check_health(&self) -> bool {
        let mut client =
            tonic_health::pb::health_client::HealthClient::with_origin(self.clone(), self.inner.origin.clone());
        let req = tonic::Request::new(tonic_health::pb::HealthCheckRequest { service: String::new() });
        let serving = match tokio::time::timeout(Duration::from_secs(2), client.check(req)).await {
            Ok(Ok(r)) => {
                r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            }
            _ => false,
        };
        let before = self.inner.health.swap(if serving { SERVING } else { NOT_SERVING }, Ordering::Relaxed);
        if before != UNKNOWN && (before == SERVING) != serving {
            tracing::warn!(backend = %self.inner.name, serving, "backend health changed");
        }
        serving
    }

    /// What the upstream carries now, for `/healthz`.
    pub fn stats(&self) -> UpstreamStats {
        let conns = self.inner.conns.lock().expect("pool lock");
        let open: Vec<&Arc<Conn>> = conns.iter().filter(|c| !c.send.is_closed()).collect();
        UpstreamStats {
            serving: match self.health() {
                SERVING => Some(true),
                NOT_SERVING => Some(false),
                _ => None,
            },
            url: self.inner.name.clone(),
            connections: open.len(),
            in_flight: self.inner.options.max_concurrency - self.inner.slots.available_permits(),
            waiting: self.inner.waiting.load(Ordering::Relaxed),
        }
    }
}

/// A slot in the concurrency bound; the waiting count drops with it if the caller gives up.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    fn unavailable(&self) -> tonic::Status {
        tonic::Status::unavailable(format!("backend {} is unavailable", self.name))
    }

    /// A free call slot, after a bounded wait.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, tonic::Status> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.options.queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            let mut status = tonic::Status::unavailable(format!(
                "backend {} is at capacity ({} calls in flight, {} waiting); try again later",
                self.name, self.options.max_concurrency, self.options.queue
            ));
            status.metadata_mut().insert(OVERLOAD, tonic::metadata::MetadataValue::from_static("1"));
            return Err(status);
        }
        let _waiting = Waiting(&self.waiting);
        self.slots.clone().acquire_owned().await.map_err(|_| self.unavailable())
    }

    /// The least busy open connection with room for another stream, if any.
    fn pick(&self) -> (Option<Arc<Conn>>, bool) {
        let mut conns = self.conns.lock().expect("pool lock");
        conns.retain(|c| !c.send.is_closed());
        let n = conns.len();
        let mut best: Option<&Arc<Conn>> = None;
        if n > 0 {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
            for c in conns[start..].iter().chain(&conns[..start]) {
                if c.has_room()
                    && best.is_none_or(|b| c.in_flight.load(Ordering::Relaxed) < b.in_flight.load(Ordering::Relaxed))
                {
                    best = Some(c);
                }
            }
        }
        let want_more = n < self.options.connections.max(1) || best.is_none();
        (best.cloned(), want_more)
    }

    /// A connection to send on: an open one with room, else a new one.
    async fn conn(self: &Arc<Self>) -> Result<Arc<Conn>, tonic::Status> {
        let (best, want_more) = self.pick();
        if let Some(c) = best {
            if want_more && !self.growing.swap(true, Ordering::AcqRel) {
                // Grow in the background; this call goes on the connection it has.
                let inner = self.clone();
                tokio::spawn(async move {
                    let _ = inner.open().await;
                    inner.growing.store(false, Ordering::Release);
                });
            }
            return Ok(c);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let (Some(c), _) = self.pick() {
            return Ok(c);
        }
        self.open().await
    }

    /// Dials the backend and adds the connection to the pool.
    async fn open(self: &Arc<Self>) -> Result<Arc<Conn>, tonic::Status> {
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                tracing::warn!(backend = %self.name, error = %e, "cannot connect to the backend");
                return Err(self.connection_failed(format!("backend {} is unavailable", self.name)));
            }
            Err(_) => {
                tracing::warn!(backend = %self.name, "connecting to the backend timed out");
                return Err(self.connection_failed(format!("backend {} is unavailable", self.name)));
            }
        };
        // Nagle's algorithm meets delayed ACKs on loopback: without NODELAY p99 sits near 40 ms.
        let _ = tcp.set_nodelay(true);
        match (&self.tls_name, &self.options.tls) {
            (Some(name), Some(tls)) => {
                let handshake = tls.connector().connect(name.clone(), tcp);
                match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                    Ok(Ok(stream)) => self.handshake(stream).await,
                    Ok(Err(e)) => {
                        tracing::warn!(backend = %self.name, error = %e, "TLS handshake with the backend failed");
                        Err(self.connection_failed(format!("TLS with backend {} failed: {e}", self.name)))
                    }
                    Err(_) => Err(self.connection_failed(format!("TLS with backend {} timed out", self.name))),
                }
            }
            _ => self.handshake(tcp).await,
        }
    }

    /// Counts a connection that could not be made; the backend is taken as not serving until
    /// a check says otherwise.
    fn connection_failed(&self, message: String) -> tonic::Status {
        metrics::counter!("switchyard_gateway_backend_connection_failures_total", "backend" => self.name.clone())
            .increment(1);
        self.health.store(NOT_SERVING, Ordering::Relaxed);
        tonic::Status::unavailable(message)
    }

    /// Speaks HTTP/2 on a connected socket and adds the connection to the pool.
    async fn handshake<I>(self: &Arc<Self>, io: I) -> Result<Arc<Conn>, tonic::Status>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            // Windows of 1 MiB per stream and 2 MiB per connection keep an upload at disk speed
            // while bounding what a stream can have in flight (and so the gateway's memory).
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(2 << 20)
            .max_header_list_size(self.options.max_response_headers)
            .keep_alive_interval(self.options.keepalive)
            .keep_alive_while_idle(true);
        let (send, mut connection) = match builder.handshake(TokioIo::new(io)).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(backend = %self.name, error = %e, "HTTP/2 handshake with the backend failed");
                return Err(self.unavailable());
            }
        };
        let max_streams = Arc::new(AtomicUsize::new(connection.current_max_send_streams()));
        let seen = max_streams.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            let result = std::future::poll_fn(|cx| {
                let r = Pin::new(&mut connection).poll(cx);
                seen.store(connection.current_max_send_streams(), Ordering::Relaxed);
                r
            })
            .await;
            match result {
                Ok(()) => tracing::debug!(backend = %name, "backend connection closed"),
                Err(e) => tracing::info!(backend = %name, error = %e, "backend connection failed"),
            }
        });
        let conn = Arc::new(Conn { send, in_flight: AtomicUsize::new(0), max_streams });
        self.conns.lock().expect("pool lock").push(conn.clone());
        Ok(conn)
    }

    /// Sends one call; a call the connection refused before sending goes once more on another.
    async fn call(
        self: Arc<Self>,
        req: http::Request<tonic::body::Body>,
    ) -> Result<http::Response<CallBody>, tonic::Status> {
        let mut slot = Some(self.slot().await?);
        let mut req = req;
        for attempt in 0..2 {
            let conn = self.conn().await?;
            conn.in_flight.fetch_add(1, Ordering::Relaxed);
            let mut guard = InFlight { conn: conn.clone(), _slot: None };
            match conn.send.clone().try_send_request(req).await {
                Ok(resp) => {
                    guard._slot = slot.take();
                    return Ok(resp.map(|body| CallBody { body, _guard: guard }));
                }
                Err(mut e) => match e.take_message() {
                    Some(back) if attempt == 0 => {
                        tracing::debug!(backend = %self.name, "connection closed before the call was sent; retrying");
                        req = back;
                    }
                    _ => return Err(self.call_error(e.into_error())),
                },
            }
        }
        Err(self.unavailable())
    }

    /// The status of a call that failed in transport.
    fn call_error(&self, e: hyper::Error) -> tonic::Status {
        let h2 = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<h2::Error>());
        if let Some(h2) = h2
            && h2.is_reset()
            && h2.is_library()
        {
            // We reset the stream ourselves: the backend's answer broke a protocol limit (most
            // likely headers over what we accept). Its fault, and this call's alone.
            tracing::warn!(backend = %self.name, error = %e, "refused a backend response");
            return tonic::Status::internal(format!(
                "the backend's response was refused (response headers are limited to {} bytes)",
                self.options.max_response_headers
            ));
        }
        tracing::info!(backend = %self.name, error = %e, "backend call failed");
        self.unavailable()
    }
}

/// Calls may wait this long for a TCP connection to the backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Holds a call's place on its connection and in the concurrency bound until its response ends.
struct InFlight {
    conn: Arc<Conn>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps the call counted while it is read.
pub struct CallBody {
    body: hyper::body::Incoming,
    _guard: InFlight,
}

impl http_body::Body for CallBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Upstream {
    type Response = http::Response<CallBody>;
    type Error = tonic::Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, tonic::Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), tonic::Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.inner.clone().call(req))
    }
}
