//! What each request leaves behind: Prometheus metrics (by route template, method, HTTP status
//! and gRPC code: counts, latency, bytes) and one access-log line (method, route, status, code,
//! latency, request id, bytes). The Authorization header is never logged.

use crate::routes::Route;
use axum::response::Response;
use http::Method;
use metrics::{Counter, Gauge, Histogram};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Instant;

/// The metric handles of one route, per answer kind (method, HTTP status, gRPC code), made on
/// first use. Looking handles up by their labels cost six allocations and four registry
/// lookups on every request; a route sees only a handful of answer kinds.
#[derive(Default)]
pub struct RouteMetrics {
    kinds: RwLock<Vec<(AnswerKind, Arc<Handles>)>>,
}

#[derive(PartialEq, Eq)]
struct AnswerKind {
    method: Method,
    status: u16,
    /// -1: none (a legacy answer).
    code: i32,
}

struct Handles {
    requests: Counter,
    duration: Histogram,
    bytes_in: Counter,
    bytes_out: Counter,
}

impl RouteMetrics {
    fn handles(&self, label: &str, kind: AnswerKind) -> Arc<Handles> {
        let known = self.kinds.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, h)) = known.iter().find(|(k, _)| *k == kind) {
            return h.clone();
        }
        drop(known);
        let labels = [
            ("route", label.to_owned()),
            ("method", kind.method.as_str().to_owned()),
            ("status", kind.status.to_string()),
            ("code", if kind.code < 0 { String::new() } else { kind.code.to_string() }),
        ];
        let route = [("route", label.to_owned())];
        let h = Arc::new(Handles {
            requests: metrics::counter!("switchyard_gateway_requests_total", &labels),
            duration: metrics::histogram!("switchyard_gateway_request_duration_seconds", &route),
            bytes_in: metrics::counter!("switchyard_gateway_request_bytes_total", &route),
            bytes_out: metrics::counter!("switchyard_gateway_response_bytes_total", &route),
        });
        let mut known = self.kinds.write().unwrap_or_else(|e| e.into_inner());
        // Methods and statuses come from clients: keep the list short whatever they send.
        if known.len() < 64 {
            known.push((kind, h.clone()));
        }
        h
    }
}

/// Answers that matched no gRPC route: the legacy API's, and those that matched nothing.
static LEGACY: LazyLock<RouteMetrics> = LazyLock::new(RouteMetrics::default);
static UNMATCHED: LazyLock<RouteMetrics> = LazyLock::new(RouteMetrics::default);

fn in_flight() -> &'static Gauge {
    static G: LazyLock<Gauge> = LazyLock::new(|| metrics::gauge!("switchyard_gateway_requests_in_flight"));
    &G
}

/// The gRPC code of an answer the gateway made from an error (successes carry none: OK).
#[derive(Debug, Clone, Copy)]
pub struct GrpcCode(pub tonic::Code);

/// A request being answered.
pub struct Seen {
    started: Instant,
    method: Method,
    bytes_in: u64,
    /// The gateway's span, when spans are exported.
    span: Option<switchyard_common::telemetry::ServerSpan>,
}

impl Seen {
    pub fn new<B>(req: &http::Request<B>) -> Self {
        in_flight().increment(1.0);
        let bytes_in =
            req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
        Seen { started: Instant::now(), method: req.method().clone(), bytes_in, span: None }
    }

    /// When the request arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Starts the gateway's span for the request (when spans are exported) and puts its trace
    /// context in the request's `traceparent`, which goes on to the backend as metadata.
    pub fn trace<B>(&mut self, req: &mut http::Request<B>, route: Option<&Route>) {
        if !switchyard_common::telemetry::enabled() {
            return;
        }
        let name = match route {
            Some(r) => r.label.clone(),
            None => format!("{} unmatched", req.method()),
        };
        let span = switchyard_common::telemetry::ServerSpan::start("switchyard-gateway", name, req.headers());
        span.set("http.request.method", req.method().as_str().to_owned());
        if let Some((_, template)) = route.and_then(|r| r.label.split_once(' ')) {
            span.set("http.route", template.to_owned());
        }
        span.inject(req.headers_mut());
        self.span = Some(span);
    }

    /// Records the answer (its headers: a stream's duration is the time to its first byte).
    pub fn done(self, route: Option<&Route>, resp: &mut Response, access_log: bool) {
        in_flight().decrement(1.0);
        let elapsed = self.started.elapsed();
        let legacy = resp.extensions().get::<crate::dispatch::Verbatim>().is_some();
        let (label, cache) = match (route, legacy) {
            (_, true) => ("legacy", &*LEGACY),
            (Some(r), false) => (r.label.as_str(), &r.metrics),
            (None, false) => ("unmatched", &*UNMATCHED),
        };
        let status = resp.status().as_u16();
        let code = match (resp.extensions().get::<GrpcCode>(), legacy) {
            (Some(c), _) => c.0 as i32,
            (None, false) => 0,
            (None, true) => -1,
        };
        if let Some(span) = self.span {
            span.set("http.response.status_code", i64::from(status));
            // The client learns the trace its request joined.
            span.inject(resp.headers_mut());
            span.end((code >= 0).then_some(i64::from(code)));
        }
        let bytes_out = http_body::Body::size_hint(resp.body()).exact();
        let h = cache.handles(label, AnswerKind { method: self.method.clone(), status, code });
        h.requests.increment(1);
        h.duration.record(elapsed.as_secs_f64());
        h.bytes_in.increment(self.bytes_in);
        if let Some(n) = bytes_out {
            h.bytes_out.increment(n);
        }
        if access_log {
            let request_id =
                resp.headers().get(crate::metadata::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            let micros = (elapsed.as_secs_f64() * 1e6).round() as u64;
            let latency_ms = micros as f64 / 1e3;
            let bytes_out = bytes_out.unwrap_or(0);
            // The same line either way; written straight into the log's batch when the process
            // logs plain text through its own logger, which costs a fraction of the event.
            let direct = tracing::enabled!(target: "switchyard::access", tracing::Level::INFO)
                && tracing::Span::current().is_none()
                && switchyard_common::logging::info_line("switchyard::access", |line| {
                    line.plain("method", self.method.as_str())
                        .str("route", label)
                        .int("status", status)
                        .int("code", code)
                        .thousandths("latency_ms", micros)
                        .str("request_id", request_id)
                        .int("bytes_in", self.bytes_in)
                        .int("bytes_out", bytes_out);
                });
            if !direct {
                tracing::info!(
                    target: "switchyard::access",
                    method = %self.method,
                    route = label,
                    status,
                    code,
                    latency_ms,
                    request_id,
                    bytes_in = self.bytes_in,
                    bytes_out,
                );
            }
        }
    }
}

/// Sets the gauges of each backend's state, for a scrape.
pub fn backends(ups: &crate::upstreams::Upstreams) {
    for u in ups.all() {
        let stats = u.stats();
        let b = [("backend", stats.url.clone())];
        metrics::gauge!("switchyard_gateway_backend_up", &b).set(if stats.serving == Some(false) { 0.0 } else { 1.0 });
        metrics::gauge!("switchyard_gateway_backend_connections", &b).set(stats.connections as f64);
        metrics::gauge!("switchyard_gateway_backend_calls_in_flight", &b).set(stats.in_flight as f64);
        metrics::gauge!("switchyard_gateway_backend_calls_waiting", &b).set(stats.waiting as f64);
    }
}
