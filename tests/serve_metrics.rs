//! `switchyard serve` (the default command) with `--grpc-metrics-listen` and
//! `--http-metrics-listen`: each address serves the process's Prometheus metrics, the backend's
//! calls and the gateway's requests alike.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn serve_has_metrics_listeners_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .current_dir(dir.path())
        .args(["--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--grpc-metrics-listen", "127.0.0.1:0", "--http-metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut gateway, mut metrics) = (None, Vec::new());
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.trim().strip_prefix("REST gateway : ") {
                gateway = Some(url.to_owned());
            }
            if let Some(url) = line.trim().strip_prefix("metrics      : ") {
                metrics.push(url.to_owned());
                if metrics.len() == 2 {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("the banner names both metrics addresses");
    let gateway = gateway.expect("the banner names the gateway");

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{gateway}/api/v1/users"))
        .json(&serde_json::json!({"name": "M", "email": "m@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    for url in &metrics {
        let resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("switchyard_backend_calls_total{"), "{url}: {text}");
        assert!(text.contains("switchyard_gateway_requests_total{"), "{url}: {text}");
    }
    assert_ne!(metrics[0], metrics[1]);
}
