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
//! The pool speaks HTTP/2 with the `h2` crate directly rather than through hyper's client: hyper
//! hands each request to its dispatch task, spawns a task to await the response and another to
//! send the body, and sends a request's DATA only after the connection task has written its
//! HEADERS — two writes and three task hops per call. Here the caller's task opens the stream,
//! queues the whole message at once (one write carries HEADERS and DATA) and awaits the response
//! itself; a body that is not ready at once (a client stream) is sent by a task of its own.

use bytes::Bytes;
use http::Uri;
use http_body::Body as _;
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
    send: h2::client::SendRequest<Bytes>,
    /// The connection's task has ended: no more calls go on it.
    closed: Arc<AtomicBool>,
    /// Calls on this connection whose response has not ended.
    in_flight: AtomicUsize,
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS, as the connection last saw it.
    max_streams: Arc<AtomicUsize>,
    /// A call was queued while others were in flight: the connection's task lets the tasks
    /// that are ready run first, so their calls leave in the same write (see [`drive`]).
    coalesce: Arc<AtomicBool>,
}

impl Conn {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

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

    /// A call whose whole body is known (a unary call, framed): `path` with the call's
    /// metadata, deadline and this backend's compression (see [`crate::grpc_http`]).
    pub async fn unary(
        &self,
        path: http::uri::PathAndQuery,
        metadata: tonic::metadata::MetadataMap,
        timeout: Option<Duration>,
        message: &[u8],
    ) -> Result<http::Response<CallBody>, tonic::Status> {
        let compression = self.inner.options.compression;
        let body = crate::grpc_http::frame(message, compression)?;
        let mut uri = http::uri::Parts::default();
        uri.scheme = self.inner.origin.scheme().cloned();
        uri.authority = self.inner.origin.authority().cloned();
        uri.path_and_query = Some(path);
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = http::Method::POST;
        parts.uri = Uri::from_parts(uri).map_err(|e| tonic::Status::internal(format!("bad backend URI: {e}")))?;
        parts.version = http::Version::HTTP_2;
        parts.headers = crate::grpc_http::request_headers(metadata, timeout, compression);
        self.inner.clone().call(parts, Payload::Whole(body)).await
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
        let open: Vec<&Arc<Conn>> = conns.iter().filter(|c| !c.is_closed()).collect();
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
        conns.retain(|c| !c.is_closed());
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
        // Boxed: dialing (TCP, TLS, the HTTP/2 handshake) is most of this future's size, and
        // every call's future would carry it though few calls dial.
        Box::pin(self.open()).await
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
        crate::idle::watch(&tcp);
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
        let mut builder = h2::client::Builder::new();
        builder
            // Windows of 1 MiB per stream and 2 MiB per connection keep an upload at disk speed
            // while bounding what a stream can have in flight (and so the gateway's memory).
            .initial_window_size(1 << 20)
            .initial_connection_window_size(2 << 20)
            .max_header_list_size(self.options.max_response_headers)
            .enable_push(false);
        let (send, mut connection) = match builder.handshake::<_, Bytes>(io).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(backend = %self.name, error = %e, "HTTP/2 handshake with the backend failed");
                return Err(self.unavailable());
            }
        };
        let max_streams = Arc::new(AtomicUsize::new(connection.max_concurrent_send_streams()));
        let closed = Arc::new(AtomicBool::new(false));
        let (seen, ended) = (max_streams.clone(), closed.clone());
        let pings = connection.ping_pong().zip(self.options.keepalive);
        let name = self.name.clone();
        let coalesce = Arc::new(AtomicBool::new(false));
        let queued = coalesce.clone();
        tokio::spawn(async move {
            let serve = drive(&mut connection, &seen, &queued);
            let result = match pings {
                Some((pings, every)) => tokio::select! {
                    r = serve => r.map_err(|e| e.to_string()),
                    () = keepalive(pings, every) => Err(format!("no answer to a PING within {every:?}")),
                },
                None => serve.await.map_err(|e| e.to_string()),
            };
            ended.store(true, Ordering::Relaxed);
            match result {
                Ok(()) => tracing::debug!(backend = %name, "backend connection closed"),
                Err(e) => tracing::info!(backend = %name, error = %e, "backend connection failed"),
            }
        });
        let conn = Arc::new(Conn { send, closed, in_flight: AtomicUsize::new(0), max_streams, coalesce });
        self.conns.lock().expect("pool lock").push(conn.clone());
        Ok(conn)
    }

    /// Sends one call; a call no connection would take goes once more on another.
    async fn call(
        self: Arc<Self>,
        parts: http::request::Parts,
        body: Payload,
    ) -> Result<http::Response<CallBody>, tonic::Status> {
        let mut slot = Some(self.slot().await?);
        for attempt in 0..2 {
            let conn = self.conn().await?;
            let mut guard = InFlight::new(conn.clone());
            match conn.send.clone().ready().await {
                Ok(send) => {
                    guard._slot = slot.take();
                    return self.send(send, parts, body, guard).await;
                }
                Err(e) if attempt == 0 => {
                    tracing::debug!(backend = %self.name, error = %e, "connection closed before the call was sent; retrying");
                }
                Err(e) => return Err(self.call_error(e)),
            }
        }
        Err(self.unavailable())
    }

    /// Opens the call's stream, queues its body and awaits the response headers.
    async fn send(
        &self,
        mut send: h2::client::SendRequest<Bytes>,
        parts: http::request::Parts,
        body: Payload,
        guard: InFlight,
    ) -> Result<http::Response<CallBody>, tonic::Status> {
        let eos = match &body {
            Payload::Whole(b) => b.is_empty(),
            Payload::Stream(b) => b.is_end_stream(),
        };
        if guard.conn.in_flight.load(Ordering::Relaxed) > 1 {
            // Before the send, which wakes the connection's task: it must see this.
            guard.conn.coalesce.store(true, Ordering::Relaxed);
        }
        let (response, mut stream) =
            send.send_request(http::Request::from_parts(parts, ()), eos).map_err(|e| self.call_error(e))?;
        match body {
            _ if eos => {}
            // Queued behind the HEADERS (h2 holds it until the window allows): one write
            // carries both.
            Payload::Whole(b) => stream.send_data(b, true).map_err(|e| self.call_error(e))?,
            Payload::Stream(body) => {
                // Polled once here, before this task yields to the connection's: what the body
                // has ready is queued behind the HEADERS and leaves in the same write.
                let mut pipe = Box::pin(send_body(body, stream));
                if futures::poll!(pipe.as_mut()).is_pending() {
                    tokio::spawn(pipe);
                }
            }
        }
        let response = response.await.map_err(|e| self.call_error(e))?;
        Ok(response.map(|body| CallBody { body, data_done: false, for_tonic: false, _guard: guard }))
    }

    /// The status of a call that failed in transport.
    fn call_error(&self, e: h2::Error) -> tonic::Status {
        if e.is_reset() && e.is_library() {
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

/// Sends a connection's PINGs every `every`; returns when one goes unanswered that long, so the
/// connection is dropped and the next call opens a new one.
async fn keepalive(mut pings: h2::PingPong, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(every, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
    }
}

/// Sends a request body on its stream. The first piece goes at once, whatever the stream's
/// flow-control window (h2 holds it until the window allows); each later one waits for send
/// capacity, so a long upload never piles up in the gateway. A body error (a cancelled call)
/// or a reset from the backend ends the stream.
async fn send_body(body: tonic::body::Body, mut stream: h2::SendStream<Bytes>) {
    use http_body_util::BodyExt;
    let mut body = std::pin::pin!(body);
    let mut first = true;
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            _ = std::future::poll_fn(|cx| stream.poll_reset(cx)) => return,
        };
        let frame = match frame {
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "request body ended with an error; resetting the stream");
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                if !first && !data.is_empty() && !has_capacity(&mut stream).await {
                    return;
                }
                first = false;
                let eos = body.is_end_stream();
                if stream.send_data(data, eos).is_err() || eos {
                    return;
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            let _ = stream.send_trailers(trailers);
            return;
        }
    }
}

/// Waits until the stream may send again; false if it cannot any more.
async fn has_capacity(stream: &mut h2::SendStream<Bytes>) -> bool {
    stream.reserve_capacity(1);
    while stream.capacity() == 0 {
        match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(_)) => {}
            _ => return false,
        }
    }
    true
}

/// What a call sends after its headers.
enum Payload {
    /// The whole body, known up front (a unary request): it leaves with the headers.
    Whole(Bytes),
    /// A body that arrives over time (tonic's calls: client streams and the rest).
    Stream(tonic::body::Body),
}

/// Calls may wait this long for a TCP connection to the backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a backend connection, coalescing the writes of calls made at about the same time.
///
/// A call wakes the connection's task, which tokio runs next on the same thread (its LIFO
/// slot): under load every call then left in a write of its own, a system call that on
/// loopback also does the receiver's TCP work. When the woken task finds a call queued while
/// others were in flight, it first yields until the thread has run the tasks that are ready
/// (`yield_now` defers it behind them), so the calls they make go out in one write. A lone
/// call (nothing else in flight) is written at once, and reads are never deferred.
async fn drive<T>(
    connection: &mut h2::client::Connection<T, Bytes>,
    max_streams: &AtomicUsize,
    coalesce: &AtomicBool,
) -> Result<(), h2::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let mut polled = false;
        let woken = std::future::poll_fn(|cx| {
            if polled {
                return Poll::Ready(None);
            }
            polled = true;
            let r = Pin::new(&mut *connection).poll(cx);
            max_streams.store(connection.max_concurrent_send_streams(), Ordering::Relaxed);
            r.map(Some)
        })
        .await;
        if let Some(done) = woken {
            return done;
        }
        if coalesce.swap(false, Ordering::Relaxed) {
            tokio::task::yield_now().await;
        }
    }
}

/// Holds a call's place on its connection and in the concurrency bound until its response ends.
struct InFlight {
    conn: Arc<Conn>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl InFlight {
    fn new(conn: Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { conn, _slot: None }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps the call counted while it is read, and hands the flow-control
/// window back as data is taken.
pub struct CallBody {
    body: h2::RecvStream,
    data_done: bool,
    /// Read by tonic's client, whose trailers need [`crate::grpc_http::drop_bad_details`].
    for_tonic: bool,
    _guard: InFlight,
}

impl http_body::Body for CallBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match std::task::ready!(self.body.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.body.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => self.data_done = true,
            }
        }
        match std::task::ready!(self.body.poll_trailers(cx)) {
            Ok(Some(mut trailers)) => {
                if self.for_tonic {
                    crate::grpc_http::drop_bad_details(&mut trailers);
                }
                Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
            }
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Upstream {
    type Response = http::Response<CallBody>;
    type Error = tonic::Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, tonic::Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), tonic::Status>> {
        Poll::Ready(Ok(()))
    }

    /// The calls tonic's client makes (the streaming ones). Its `Status::from_header_map`
    /// `expect`s valid base64 details, so a bad one is dropped from the headers (a trailers-only
    /// answer) and the trailers before tonic reads them; unary calls read the status with
    /// [`crate::grpc_http::status_of`], which drops them itself.
    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut response = inner.call(parts, Payload::Stream(body)).await?;
            crate::grpc_http::drop_bad_details(response.headers_mut());
            response.body_mut().for_tonic = true;
            Ok(response)
        })
    }
}
