//! `switchyard bench` in a tiny configuration: every scenario over every path, the table, the
//! JSON and the SVG (no timing thresholds: speed belongs in the bench's own output).

mod common;

use serde_json::Value;

fn bench(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("bench")
        .args(["--quick", "--concurrency", "1,2", "--duration", "0.05", "--warmup", "0.01", "--rounds", "2"])
        .args(["--orders", "5", "--upload-mib", "1"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Starts its own children, runs every scenario over all four paths, writes JSON and SVG.
#[test]
fn every_scenario_and_output_works() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let svg = dir.path().join("bench.svg");
    let (table, _) = bench(&["--json", json.to_str().unwrap(), "--plot", svg.to_str().unwrap()]);
    for word in [
        "get-user",
        "create-user",
        "list-users",
        "get-orders",
        "upload",
        "grpc",
        "gateway-h1",
        "gateway-h2",
        "gateway-h1-no-access-log",
        "legacy-rest",
        "legacy-passthrough",
        "legacy-shadowed",
        "summary",
    ] {
        assert!(table.contains(word), "{word} missing from:\n{table}");
    }

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 5 * 2 * 7, "5 scenarios x 2 concurrency levels x 7 paths");
    for c in cells {
        assert!(c["requests"].as_u64().unwrap() > 0, "no request succeeded in {c}");
        assert_eq!(c["errors"], serde_json::json!({}), "errors in {c}");
        assert!(c["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
        match c["scenario"].as_str().unwrap() {
            "get-orders" => {
                assert!(c["messages_per_s"].as_f64().unwrap() > 0.0);
                assert!(c["ttfm_ms"]["p50"].as_f64().unwrap() > 0.0);
            }
            "upload" => assert!(c["mb_per_s"].as_f64().unwrap() > 0.0),
            _ => {}
        }
        let cpu = c["cpu_ms_per_1k"].as_object().unwrap();
        let expected = match c["path"].as_str().unwrap() {
            "grpc" => vec!["backend"],
            "legacy-rest" => vec!["legacy-rest"],
            "legacy-passthrough" => vec!["legacy-rest", "passthrough"],
            "legacy-shadowed" => vec!["legacy-rest", "shadow"],
            "gateway-h1-no-access-log" => vec!["backend", "gateway-no-access-log"],
            _ => vec!["backend", "gateway"],
        };
        for p in expected {
            assert!(cpu.contains_key(p), "no CPU figure for {p} in {c}");
        }
    }
    assert!(report["payloads"].as_array().unwrap().len() >= 4);
    assert!(report["peak_rss_bytes"]["gateway"].as_u64().unwrap() > 0);
    let summary = report["summary"].as_array().unwrap();
    assert!(summary.iter().any(|r| r["what"].as_str().unwrap().contains("legacy-shadowed / legacy-passthrough")));
    assert!(summary.iter().any(|r| r["what"].as_str().unwrap().contains("without access log")));

    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg"));
    assert!(plot.contains("gateway-h1") && plot.contains("throughput"));
}

/// Pointed at an existing deployment, it measures what it can (no legacy path, no process
/// figures) and starts nothing of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measures_an_existing_deployment() {
    let sys = common::System::start().await;
    let grpc = format!("http://{}", sys.grpc);
    let base = sys.base.clone();
    let (table, stderr) =
        tokio::task::spawn_blocking(move || bench(&["--scenario", "get-user", "--grpc", &grpc, "--rest", &base]))
            .await
            .unwrap();
    assert!(!stderr.contains("starting backend"), "{stderr}");
    assert!(table.contains("gateway-h2") && !table.contains("legacy-rest"), "{table}");
}
