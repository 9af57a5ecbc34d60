//! The backend's own figures: requests served per service and the process's CPU and memory
//! (read from the kernel) for Monitor; calls per method and gRPC code, and their latency, for
//! Prometheus.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

/// Requests since start, in total and per gRPC service.
#[derive(Default)]
pub struct RequestCounts {
    total: AtomicU64,
    /// Fixed at start (every served service), so counting needs no lock.
    per_service: HashMap<String, AtomicU64>,
}

impl RequestCounts {
    /// Counters for these services (full names, e.g. `user.v1.UserService`).
    pub fn new<'a>(services: impl IntoIterator<Item = &'a str>) -> Self {
        RequestCounts {
            total: AtomicU64::new(0),
            per_service: services.into_iter().map(|s| (s.to_owned(), AtomicU64::new(0))).collect(),
        }
    }

    /// Counts one request to a gRPC path (`/package.Service/Method`).
    pub fn count(&self, path: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if let Some(c) = self.per_service.get(service) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// All requests so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Requests to one service so far; `None` for a service that is not served.
    pub fn service(&self, name: &str) -> Option<u64> {
        self.per_service.get(name).map(|c| c.load(Ordering::Relaxed))
    }
}

/// A tower layer that counts every request into [`RequestCounts`].
#[derive(Clone)]
pub struct CountLayer(pub Arc<RequestCounts>);

impl<S> tower::Layer<S> for CountLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner, counts: self.0.clone() }
    }
}

/// The service [`CountLayer`] wraps.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counts: Arc<RequestCounts>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<Recorded<R>>;
    type Error = S::Error;
    type Future = Counting<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        self.counts.count(path);
        // Only served methods get a label of their own: a scanner's random paths must not
        // grow the metrics without bound.
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let method = if self.counts.service(service).is_some() { path.to_owned() } else { "unknown".to_owned() };
        // The backend's span, child of the caller's (the gateway's) trace context.
        let span = switchyard_common::telemetry::enabled().then(|| {
            let span = switchyard_common::telemetry::ServerSpan::start(
                "switchyard-backend",
                method.trim_start_matches('/').to_owned(),
                req.headers(),
            );
            span.set("rpc.system", "grpc");
            span
        });
        Counting { inner: self.inner.call(req), call: Some(Call { method, started: Instant::now(), span }) }
    }
}

/// One call being answered: recorded when its status is known.
struct Call {
    method: String,
    started: Instant,
    span: Option<switchyard_common::telemetry::ServerSpan>,
}

impl Call {
    /// Records the call with its gRPC status code (from the headers of a trailers-only answer
    /// or from the trailers; a stream dropped before either counts as CANCELLED).
    fn record(self, code: &str) {
        if let Some(span) = self.span {
            span.end(code.parse().ok());
        }
        let labels = [("method", self.method), ("code", code.to_owned())];
        metrics::histogram!("switchyard_backend_call_duration_seconds", &labels[..1])
            .record(self.started.elapsed().as_secs_f64());
        metrics::counter!("switchyard_backend_calls_total", &labels).increment(1);
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok())
}

pin_project_lite::pin_project! {
    /// The future of a [`Counted`] call.
    pub struct Counting<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, R, E> std::future::Future for Counting<F>
where
    F: std::future::Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<Recorded<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = match std::task::ready!(this.inner.poll(cx)) {
            Ok(resp) => resp,
            Err(e) => {
                if let Some(call) = this.call.take() {
                    call.record("13");
                }
                return Poll::Ready(Err(e));
            }
        };
        let mut call = this.call.take();
        if let Some(code) = grpc_status(resp.headers())
            && let Some(c) = call.take()
        {
            c.record(code);
        }
        Poll::Ready(Ok(resp.map(|body| Recorded { inner: body, call })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when the trailers pass (or when it is dropped).
    pub struct Recorded<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for Recorded<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.record("1");
            }
        }
    }
}

impl<B: http_body::Body> http_body::Body for Recorded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(trailers) = f.trailers_ref()
            && let Some(call) = this.call.take()
        {
            call.record(grpc_status(trailers).unwrap_or("2"));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves the process's Prometheus metrics at `/metrics` on their own listener (`switchyard
/// backend --metrics-listen`), apart from the gRPC port.
/// Binds `addr` and serves the process's metrics there in the background; returns the bound
/// address.
pub async fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "metrics at /metrics");
    let _ = switchyard_common::metrics::handle();
    tokio::spawn(serve(listener));
    Ok(bound)
}

pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], switchyard_common::metrics::render())
        }),
    );
    axum::serve(listener, app).await
}

/// CPU time (user + system) the process has used so far, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Resident memory of a process (`self` or a pid) in bytes, from /proc; 0 where unavailable.
pub fn resident_bytes(pid: &str) -> u64 {
    let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return 0;
    };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// CPU usage between two calls, in percent of one core.
pub struct CpuMeter {
    last_cpu: f64,
    last_at: Instant,
}

impl Default for CpuMeter {
    fn default() -> Self {
        CpuMeter { last_cpu: cpu_seconds(), last_at: Instant::now() }
    }
}

impl CpuMeter {
    /// Percent of one core used since the previous sample (or since creation).
    pub fn sample(&mut self) -> f64 {
        let cpu = cpu_seconds();
        let now = Instant::now();
        let wall = now.duration_since(self.last_at).as_secs_f64();
        let pct = if wall > 0.0 { (cpu - self.last_cpu) / wall * 100.0 } else { 0.0 };
        self.last_cpu = cpu;
        self.last_at = now;
        pct.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_service() {
        let c = RequestCounts::new(["user.v1.UserService"]);
        c.count("/user.v1.UserService/GetUser");
        c.count("/user.v1.UserService/ListUsers");
        c.count("/other.Service/X");
        assert_eq!(c.total(), 3);
        assert_eq!(c.service("user.v1.UserService"), Some(2));
        assert_eq!(c.service("other.Service"), None);
    }

    #[test]
    fn process_figures_are_real() {
        assert!(resident_bytes("self") > 1_000_000);
        let mut m = CpuMeter::default();
        let until = Instant::now() + std::time::Duration::from_millis(50);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(m.sample() > 0.0);
    }
}
