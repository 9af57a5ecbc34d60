//! Running it for real: several backends for one service with health checks, retries of
//! idempotent calls, readiness, per-client rate limits, compression on the gRPC leg.

mod common;

use common::{System, assert_status, http, send};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A second backend on the same database as `sys`'s; returns its address and its stop switch.
async fn another_backend(
    sys: &System,
) -> (std::net::SocketAddr, CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = backend::Backend::open(&sys.backend_config).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(backend.serve(listener, stop.clone().cancelled_owned()));
    (addr, stop, task)
}

async fn start_gateway(config: gateway::Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway::run(listener, &config, std::future::pending()).await });
    base
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Two backends for one service: calls take turns; when one stops, the health checks take it
/// out and every call still succeeds (idempotent ones are retried on the other); `/readyz`
/// answers 200 while a backend serves and 503 when none does; a backend that returns is put
/// back.
#[tokio::test]
async fn a_balanced_set_survives_a_backend_going_away() {
    let mut sys = System::start().await;
    let (b, b_stop, b_task) = another_backend(&sys).await;
    let mut config = gateway::Config::for_backend(format!("http://{}", sys.grpc));
    config.api.backends.push(format!("http://{b}").parse().unwrap());
    config.health_check_interval = Duration::from_millis(100);
    let base = start_gateway(config).await;
    wait_for("both backends are checked", async || send(http().get(format!("{base}/readyz"))).await.0 == 200).await;
    let health = send(http().get(format!("{base}/healthz"))).await.1;
    assert_eq!(health["backends"].as_array().unwrap().len(), 2);
    let (status, user) =
        send(http().post(format!("{base}/api/v1/users")).json(&json!({"name": "B", "email": "b@example.com"}))).await;
    assert_eq!(status, 200, "{user}");
    let one = format!("{base}/api/v1/users/{}", user["id"].as_str().unwrap());

    // One backend away: every read still succeeds.
    sys.stop_backend().await;
    for _ in 0..20 {
        assert_eq!(send(http().get(&one)).await.0, 200);
    }
    assert_eq!(send(http().get(format!("{base}/readyz"))).await.0, 200);
    // Both away: not ready.
    b_stop.cancel();
    b_task.await.unwrap().unwrap();
    wait_for("nothing serves", async || send(http().get(format!("{base}/readyz"))).await.0 == 503).await;
    let readyz = send(http().get(format!("{base}/readyz"))).await.1;
    assert!(readyz["waiting"].as_array().unwrap().iter().any(|s| s == "user.v1.UserService"), "{readyz}");
    assert_status(&send(http().get(&one)).await, 503, 14);
    // One comes back: ready again, and it answers.
    sys.restart_backend().await;
    wait_for("the backend is back", async || send(http().get(format!("{base}/readyz"))).await.0 == 200).await;
    assert_eq!(send(http().get(&one)).await.0, 200);
}

/// Beyond `--rate-limit` requests per second a client gets 429 (RESOURCE_EXHAUSTED) with a
/// Retry-After.
#[tokio::test]
async fn per_client_rate_limit() {
    let sys = System::start_gateway_with(|c| c.rate_limit = std::num::NonZeroU32::new(3)).await;
    let mut limited = None;
    for _ in 0..10 {
        let resp = http().get(sys.url("/api/v1/users")).send().await.unwrap();
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let resp = limited.expect("the fourth request in a second is refused");
    assert!(resp.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 8);
}

/// gzip and zstd on the gRPC leg, negotiated: the gateway compresses requests, the backend its
/// answers.
#[tokio::test]
async fn compression_on_the_grpc_leg() {
    for codec in ["gzip", "zstd"] {
        let sys = System::start_configured(
            |b| b.compression = Some(codec.into()),
            |g| g.backend_compression = Some(codec.into()),
        )
        .await;
        let name = "n".repeat(150);
        let (status, user) =
            send(http().post(sys.url("/api/v1/users")).json(&json!({"name": name, "email": "c@example.com"}))).await;
        assert_eq!((status, user["name"].as_str().unwrap().len()), (200, 150), "{codec}");
        let (status, list) = send(http().get(sys.url("/api/v1/users"))).await;
        assert_eq!((status, list["users"].as_array().unwrap().len()), (200, 1), "{codec}");
    }
}
