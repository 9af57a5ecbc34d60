//! What the system shows about itself: Prometheus metrics and the access log. (Alone in this
//! file: the log is captured with a thread-local subscriber, which other tests' threads must not
//! race with.)

mod common;

use common::{System, assert_status, http, send};

/// A buffer the access log is written into, to read back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `/metrics` counts requests by route template, method, HTTP status and gRPC code on the
/// gateway and calls by method and code on the backend; each request leaves one access-log
/// line, without its credentials.
#[tokio::test]
async fn metrics_and_access_log() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("switchyard::access=info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runtime has one thread, so every task of the system logs through this.
    let _guard = tracing::subscriber::set_default(subscriber);
    let sys = System::start().await;
    let missing = sys.url("/api/v1/users/00000000-0000-0000-0000-000000000000");
    assert_status(&send(http().get(&missing).bearer_auth("secret-token-123")).await, 404, 5);
    assert_eq!(send(http().get(sys.url("/api/v1/users"))).await.0, 200);

    let metrics = http().get(sys.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let has = |name: &str, parts: &[&str]| {
        metrics.lines().any(|l| l.starts_with(&format!("{name}{{")) && parts.iter().all(|p| l.contains(p)))
    };
    assert!(
        has(
            "switchyard_gateway_requests_total",
            &["route=\"GET /api/v1/users/{user_id}\"", "method=\"GET\"", "status=\"404\"", "code=\"5\""]
        ),
        "{metrics}"
    );
    assert!(has("switchyard_gateway_requests_total", &["route=\"GET /api/v1/users\"", "status=\"200\"", "code=\"0\""]));
    assert!(has("switchyard_gateway_request_duration_seconds_bucket", &["route=\"GET /api/v1/users\""]));
    assert!(
        has("switchyard_backend_calls_total", &["method=\"/user.v1.UserService/GetUser\"", "code=\"5\""]),
        "{metrics}"
    );
    assert!(
        has("switchyard_backend_calls_total", &["method=\"/user.v1.UserService/ListUsers\"", "code=\"0\""]),
        "{metrics}"
    );
    assert!(has("switchyard_gateway_backend_up", &[&format!("{}", sys.grpc)]), "{metrics}");

    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = log.lines().find(|l| l.contains("status=404")).unwrap_or_else(|| panic!("no access line: {log}"));
    for part in ["method=GET", "route=\"GET /api/v1/users/{user_id}\"", "code=5", "request_id=", "latency_ms="] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    assert!(!log.contains("secret-token-123"), "{log}");
}
