//! Distributed tracing: W3C trace context (`traceparent`, `tracestate`) in and out, and spans
//! exported over OTLP/gRPC when `--otlp-endpoint` is set.
//!
//! Spans are made with the OpenTelemetry API directly rather than through `tracing`, so that a
//! process without an endpoint pays one atomic load per request and nothing else.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether spans are being exported.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The tracing flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TelemetryArgs {
    /// Export spans over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317. Off by default.
    #[arg(long, env = "SWITCHYARD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Why spans cannot be exported.
#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter for {endpoint}: {reason}")]
pub struct TelemetryError {
    endpoint: String,
    reason: String,
}

/// The exporting pipeline; [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl TelemetryArgs {
    /// Starts exporting when an endpoint is set. Call inside the tokio runtime: the exporter's
    /// channel lives on it.
    pub fn init(&self, service: &'static str) -> Result<Option<Telemetry>, TelemetryError> {
        let Some(endpoint) = &self.otlp_endpoint else { return Ok(None) };
        init(service, endpoint).map(Some)
    }
}

/// Starts exporting spans of `service` to `endpoint`.
pub fn init(service: &'static str, endpoint: &str) -> Result<Telemetry, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError { endpoint: endpoint.to_owned(), reason: e.to_string() })?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Ordering::Release);
    tracing::info!(endpoint, "exporting spans over OTLP");
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Sends the spans still buffered.
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "flushing spans");
        }
    }

    /// Sends the spans still buffered and stops exporting.
    pub fn shutdown(self) {
        ENABLED.store(false, Ordering::Release);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "shutting the span exporter down");
        }
    }
}

/// Whether spans are being exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// A span for one request a server handles, child of the caller's trace context.
pub struct ServerSpan {
    cx: Context,
}

impl ServerSpan {
    /// Starts a span named `name` under the trace context in `headers` (or a new trace).
    pub fn start(scope: &'static str, name: String, headers: &http::HeaderMap) -> Self {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let tracer = global::tracer(scope);
        let span = tracer.span_builder(name).with_kind(SpanKind::Server).start_with_context(&tracer, &parent);
        ServerSpan { cx: parent.with_span(span) }
    }

    /// Writes this span's context as `traceparent` (and `tracestate`), so whatever is called
    /// next, or the client, can join the trace.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        TraceContextPropagator::new().inject_context(&self.cx, &mut HeadersMut(headers));
    }

    /// Adds an attribute.
    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.cx.span().set_attribute(KeyValue::new(key, value.into()));
    }

    /// Ends the span with the call's gRPC status code (an error unless OK).
    pub fn end(self, grpc_code: Option<i64>) {
        let span = self.cx.span();
        if let Some(code) = grpc_code {
            span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
            if code != 0 {
                span.set_status(Status::error(format!("gRPC status {code}")));
            }
        }
        span.end();
    }
}
