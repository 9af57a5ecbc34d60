//! Accepts client connections and bounds what each one may cost: how many there are, how long a
//! connection may take to send its headers, how long it may sit idle, and HTTP/2 keep-alive.
//!
//! Why not `axum::serve`: it offers none of these bounds, and a client that opens connections and
//! never finishes its headers (or never sends a second request) would hold them forever.
//!
//! Timeouts are watched at the socket ([`Watched`]), which knows when bytes arrive, together with
//! the connection's count of requests in flight (kept by the service wrapper and the response
//! body): with no request in flight, a connection that has started a new request must finish its
//! headers within `header_read_timeout`, and one that has not must start within `idle_timeout`.
//! A connection carrying a request (a long download, a quiet event stream) is never cut for
//! being quiet, and a connection upgraded to a WebSocket leaves these rules altogether.

use crate::error::GatewayError;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use switchyard_common::tls::ServerTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What a client connection may cost.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once; the next ones are answered 503 and closed.
    pub max_connections: usize,
    /// Time to send a request's headers, from its first byte.
    pub header_read_timeout: Duration,
    /// Time a connection with no request in flight is kept.
    pub idle_timeout: Duration,
    /// HTTP/2 PING interval (and the time to answer one).
    pub http2_keepalive: Option<Duration>,
    /// The largest request header section the gateway answers itself (431 beyond it); the
    /// protocol layers accept somewhat more, so that the answer can carry a Status body.
    pub max_header_size: usize,
    /// Requests per second per client address, if limited.
    pub rate_limit: Option<std::num::NonZeroU32>,
}

/// Requests per second per client address (a token bucket per address, from `governor`).
type RateLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// Where a request came from, for `X-Forwarded-For` and friends.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

/// Connections answered "too many connections" at once; beyond this they are just closed.
const MAX_REFUSING: usize = 256;

/// Serves `app` on `listener` until `shutdown` resolves, then lets running requests finish for
/// the grace period (`switchyard_common::shutdown::GRACE`) and cuts off what still runs.
pub async fn serve(
    listener: TcpListener,
    app: crate::server::App,
    limits: ConnectionLimits,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    raise_descriptor_limit(limits.max_connections);
    let builder = Arc::new(builder(&limits));
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let hard_stop = CancellationToken::new();
    let limiter = limits.rate_limit.map(|n| Arc::new(RateLimiter::keyed(governor::Quota::per_second(n))));
    // Forget the buckets of clients gone quiet, so the limiter's memory stays bounded.
    let sweeper = limiter.clone().map(|l| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                l.retain_recent();
            }
        })
    });
    tokio::pin!(shutdown);
    crate::idle::watch(&listener);
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = switchyard_common::net::accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        // Nagle's algorithm meets delayed ACKs on loopback: without NODELAY p99 sits near 40 ms.
        let _ = tcp.set_nodelay(true);
        crate::idle::watch(&tcp);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Ok(permit) = refusing.clone().try_acquire_owned() {
                let max = limits.max_connections;
                tokio::spawn(async move {
                    refuse(tcp, max).await;
                    drop(permit);
                });
            }
            continue;
        };
        let conn = Arc::new(Connection {
            state: Arc::new(ConnState::new()),
            info: ClientInfo { addr, tls: tls.is_some() },
            app: app.clone(),
            limits: limits.clone(),
            limiter: limiter.clone(),
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let hard_stop = hard_stop.clone();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let io = Watched::new(tcp, conn.state.clone(), conn.limits.clone());
            let served = async {
                let Some(acceptor) = acceptor else {
                    let serving = builder.serve_connection_with_upgrades(TokioIo::new(io), conn.clone().service());
                    return watcher.watch(serving).await;
                };
                // The handshake is part of the request head: it gets the header read timeout
                // (`Watched` fails a read past it).
                let tls = match acceptor.accept(io).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                        return Ok(());
                    }
                };
                conn.state.handshaken(tls.get_ref().1.alpn_protocol() == Some(b"h2"));
                let serving = builder.serve_connection_with_upgrades(TokioIo::new(tls), conn.clone().service());
                watcher.watch(serving).await
            };
            tokio::select! {
                r = served => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                }
                () = hard_stop.cancelled() => {}
            }
            drop(slot);
        });
    }
    drop(listener);
    switchyard_common::shutdown::drain("gateway", graceful.shutdown()).await;
    hard_stop.cancel();
    if let Some(s) = sweeper {
        s.abort();
    }
    Ok(())
}

fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // Room above our own header limit, so that the protocol layer lets the request through and
    // the gateway answers it with a Status body; far beyond it the protocol layer answers 431.
    let protocol_headers = (limits.max_header_size * 4).max(64 * 1024);
    b.http1()
        .timer(TokioTimer::new())
        // Timed by `Watched`, which tells a new request's headers from an idle keep-alive wait.
        .header_read_timeout(None)
        .max_buf_size(protocol_headers.max(400 * 1024));
    // hyper's default of 100 header fields (Envoy's max_headers_count too) stays: above 100,
    // hyper parses into a heap vector sized for the limit on every request, measured at ~5% of
    // the gateway's CPU with 1,024. More fields than that get hyper's bare 431.
    b.http2()
        .timer(TokioTimer::new())
        // WebSockets over HTTP/2 (RFC 8441).
        .enable_connect_protocol()
        .max_header_list_size(u32::try_from(protocol_headers).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.http2_keepalive)
        .keep_alive_timeout(limits.http2_keepalive.unwrap_or(Duration::from_secs(20)));
    b
}

/// Raises the soft limit on open files toward the hard one, so that `max_connections` is
/// reachable, and says so when it is not.
fn raise_descriptor_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < max_connections as u64 + 64 => tracing::warn!(
            limit,
            max_connections,
            "the open-file limit is below --max-connections; accepting will fail before the limit is reached"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Answers a connection over the limit with one 503 and closes it.
async fn refuse(tcp: TcpStream, max: usize) {
    let service = hyper::service::service_fn(move |_req: hyper::Request<Incoming>| async move {
        let mut resp =
            GatewayError::TooManyConnections { limit: max }.to_response(&prost_reflect::DescriptorPool::new());
        resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        Ok::<_, Infallible>(resp)
    });
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.keep_alive(false).timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(5));
    let _ = tokio::time::timeout(Duration::from_secs(10), http1.serve_connection(TokioIo::new(tcp), service)).await;
}

/// What one connection is doing, shared by its socket, its service and its response bodies.
struct ConnState {
    start: Instant,
    /// Requests whose response has not been fully written.
    in_flight: AtomicUsize,
    /// Milliseconds since `start` when the last request ended.
    idle_since: AtomicU64,
    /// Milliseconds since `start` plus one when the first byte of a new request arrived; 0 when
    /// none has.
    head_started: AtomicU64,
    /// The client speaks HTTP/2: its frames (PINGs, SETTINGS) are not request headers.
    http2: AtomicBool,
    /// Upgraded to a WebSocket: the socket belongs to the upgraded protocol now.
    upgraded: AtomicBool,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
    }

    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now_ms(), Ordering::Release);
        }
    }

    /// The TLS handshake is done: from here the connection is idle until a request starts.
    fn handshaken(&self, http2: bool) {
        self.http2.store(http2, Ordering::Relaxed);
        self.idle_since.store(self.now_ms(), Ordering::Release);
        self.head_started.store(0, Ordering::Release);
    }

    fn on_bytes(&self) {
        if !self.http2.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == 0
        {
            self.head_started.store(self.now_ms() + 1, Ordering::Release);
        }
    }

    /// When the connection must be closed unless something changes, if ever.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.upgraded.load(Ordering::Acquire) || self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = |v: u64| self.start + Duration::from_millis(v);
        match self.head_started.load(Ordering::Acquire) {
            0 => Some(ms(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout),
            started => Some(ms(started - 1) + limits.header_read_timeout),
        }
    }
}

/// A client socket that fails its reads once the connection's deadline passes, which makes the
/// protocol layer close it.
struct Watched {
    io: TcpStream,
    state: Arc<ConnState>,
    limits: Arc<ConnectionLimits>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    sniffed: bool,
}

impl Watched {
    fn new(io: TcpStream, state: Arc<ConnState>, limits: Arc<ConnectionLimits>) -> Self {
        let sleep = Box::pin(tokio::time::sleep(limits.idle_timeout));
        Watched { io, state, limits, sleep, sniffed: false }
    }
}

/// The HTTP/2 connection preface: a client that starts with it speaks HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() {
                    if !this.sniffed {
                        this.sniffed = true;
                        if got.starts_with(H2_PREFACE) {
                            this.state.http2.store(true, Ordering::Relaxed);
                        }
                    }
                    this.state.on_bytes();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some(deadline) = this.state.deadline(&this.limits) else {
                    return Poll::Pending;
                };
                // The timer is moved only when the deadline comes sooner than it would fire; a
                // later deadline (the next idle period of a keep-alive connection) is taken up
                // when it fires. Moving it on every idle read moved it in tokio's timer wheel
                // once per request.
                if deadline < this.sleep.deadline().into_std() {
                    this.sleep.as_mut().reset(deadline.into());
                }
                loop {
                    match this.sleep.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) if Instant::now() < deadline => this.sleep.as_mut().reset(deadline.into()),
                        Poll::Ready(()) => {
                            tracing::debug!("closing a client connection: idle or slow headers");
                            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out");
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// One client connection's share of the application, shared by its requests.
struct Connection {
    state: Arc<ConnState>,
    info: ClientInfo,
    app: crate::server::App,
    limits: Arc<ConnectionLimits>,
    limiter: Option<Arc<RateLimiter>>,
}

impl Connection {
    fn service(
        self: Arc<Self>,
    ) -> impl hyper::service::Service<
        hyper::Request<Incoming>,
        Response = Response<CountedBody>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<CountedBody>, Infallible>> + Send,
    > + Clone {
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let conn = self.clone();
            async move { Ok(conn.answer(req).await) }
        })
    }

    async fn answer(self: Arc<Self>, mut req: hyper::Request<Incoming>) -> Response<CountedBody> {
        self.state.begin();
        let counted = Counted(self.state.clone());
        req.extensions_mut().insert(self.info);
        let req = req.map(boxed);
        let limited = self.limiter.as_ref().and_then(|l| {
            l.check_key(&self.info.addr.ip()).err().map(|not_until| {
                not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()))
            })
        });
        let resp = if let Some(wait) = limited {
            let mut resp = GatewayError::RateLimited.to_response(&prost_reflect::DescriptorPool::new());
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
            resp
        } else {
            match crate::hygiene::check_request(&req, self.limits.max_header_size) {
                Err(e) => e.to_response(&prost_reflect::DescriptorPool::new()),
                Ok(()) => self.app.call(req).await,
            }
        };
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            self.state.upgraded.store(true, Ordering::Release);
        }
        resp.map(|body| CountedBody { body, _counted: counted })
    }
}

/// `body` as the application's body type. A request without a body (most GETs) gets the
/// empty body, which boxes nothing; boxing hyper's empty body was an allocation per request.
pub(crate) fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if body.is_end_stream() { Body::empty() } else { Body::new(body) }
}

/// Ends a request's count on its connection when its response body is done.
struct Counted(Arc<ConnState>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A response body that keeps its request counted as in flight until it is written or dropped.
pub struct CountedBody {
    body: Body,
    _counted: Counted,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
