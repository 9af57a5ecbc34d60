//! W3C trace context through the gateway to the backend, and spans exported over OTLP/gRPC to
//! a collector (a tiny one here, on loopback). Alone in this file: the exporter is global.

mod common;

use common::{System, http};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A collector that keeps every span it is sent, with its service name.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_and_spans_over_otlp() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let telemetry = switchyard_common::telemetry::init("switchyard", &endpoint).unwrap();
    let sys = System::start().await;

    // A client that is part of a trace already.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let resp = http()
        .get(sys.url("/api/v1/users/00000000-0000-0000-0000-000000000000"))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The answer names the gateway's span in the same trace.
    let back = resp.headers()["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = back.split('-').collect();
    assert_eq!((parts[0], parts[1]), ("00", trace_id), "{back}");
    assert_ne!(parts[2], client_span);
    assert_eq!(resp.headers()["tracestate"], "vendor=opaque");

    let mut found = None;
    for _ in 0..100 {
        telemetry.flush();
        let spans = collector.0.lock().unwrap().clone();
        let gateway = spans.iter().find(|(_, s)| s.name == "GET /api/v1/users/{user_id}").cloned();
        let backend = spans.iter().find(|(_, s)| s.name == "user.v1.UserService/GetUser").cloned();
        if let (Some(g), Some(b)) = (gateway, backend) {
            found = Some((g.1, b.1));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (gateway, backend) = found.expect("the collector gets the gateway's and the backend's spans");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // One trace: the client's; the gateway's span is the client's child, the backend's the
    // gateway's.
    assert_eq!(hex(&gateway.trace_id), trace_id);
    assert_eq!(hex(&gateway.parent_span_id), client_span);
    assert_eq!(hex(&gateway.span_id), parts[2]);
    assert_eq!(hex(&backend.trace_id), trace_id);
    assert_eq!(backend.parent_span_id, gateway.span_id);
    let attr = |s: &Span, key: &str| {
        s.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).map(|v| format!("{v:?}"))
    };
    assert!(attr(&backend, "rpc.grpc.status_code").unwrap().contains('5'));
    assert!(attr(&gateway, "http.response.status_code").unwrap().contains("404"));
    assert!(attr(&gateway, "http.route").unwrap().contains("/api/v1/users/{user_id}"));
    telemetry.shutdown();
}
