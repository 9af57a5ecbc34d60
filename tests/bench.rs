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
        assert_eq!(c["rounds"].as_array().unwrap().len(), 2, "one figure per round in {c}");
    }
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

/// `--peer` puts another gateway (here a second Switchyard gateway, started from its command
/// line) in front of the same backend: it is measured on GetUser with its own CPU, and the
/// gateways table and the summary compare it with ours.
#[test]
fn a_peer_gateway_is_measured_beside_ours() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let peer = format!(
        "other={} gateway --listen {{listen}} --backend http://{{backend}} --access-log off",
        env!("CARGO_BIN_EXE_switchyard")
    );
    // A count of requests rather than the helper's 50 ms per path: /proc counts CPU in 10 ms
    // ticks, and on a loaded machine 50 ms may hold too few requests for the peer to show any.
    let (table, _) = bench(&[
        "--requests",
        "300",
        "--scenario",
        "get-user",
        "--scenario",
        "list-users",
        "--peer",
        &peer,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(table.contains("gateways, get-user"), "{table}");
    assert!(table.contains("get-user added p50 at c=1: gateway-h1 / other"), "{table}");
    assert!(table.contains("get-user gateway CPU/req at c=2: gateway-h1 / other"), "{table}");

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cells = report["cells"].as_array().unwrap();
    let peer_cells: Vec<&Value> = cells.iter().filter(|c| c["path"] == "other").collect();
    assert_eq!(peer_cells.len(), 2, "GetUser at c=1 and c=2 only, not list-users");
    for c in peer_cells {
        assert_eq!(c["scenario"], "get-user");
        assert_eq!(c["errors"], serde_json::json!({}), "errors in {c}");
        assert!(c["cpu_ms_per_1k"]["other"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["cpu_ms_per_1k"]["backend"].as_f64().is_some(), "{c}");
        assert_eq!(c["rounds"].as_array().unwrap().len(), 2);
    }
    let gateways = report["gateways"].as_array().unwrap();
    assert!(gateways.iter().any(|g| g["path"] == "other" && g["gateway_cpu_us_per_request"].as_f64().unwrap() > 0.0));
    assert!(report["peak_rss_bytes"]["other"].as_u64().unwrap() > 0);
}

/// A peer command without `{listen}` or with a bad name is refused before anything starts.
#[test]
fn a_bad_peer_is_refused() {
    for bad in ["x=/bin/true", "=cmd {listen}", "a b=cmd {listen}", "nocommand"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["bench", "--peer", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--peer"), "{bad}");
    }
}

/// On PostgreSQL with two backend instances: both instances serve and are charged, and the
/// bench leaves no schema behind. Skipped, visibly, without `SWITCHYARD_TEST_POSTGRES_URL`.
#[test]
fn runs_on_postgres_with_two_instances() {
    let Some(url) = common::postgres_url("runs_on_postgres_with_two_instances") else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let (table, _) = bench(&[
        "--scenario",
        "get-user",
        "--scenario",
        "create-user",
        "--database",
        &url,
        "--backend-instances",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(table.contains("backend-2"), "{table}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["settings"]["database"], "postgres");
    for c in report["cells"].as_array().unwrap() {
        assert_eq!(c["errors"], serde_json::json!({}), "errors in {c}");
        if c["path"] == "grpc" || c["path"] == "gateway-h1" {
            let cpu = c["cpu_ms_per_1k"].as_object().unwrap();
            assert!(cpu.contains_key("backend") && cpu.contains_key("backend-2"), "{c}");
        }
    }
}

/// More than one backend instance on SQLite is refused: one process owns the file.
#[test]
fn two_instances_need_postgres() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["bench", "--quick", "--backend-instances", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --database postgres://"), "{out:?}");
}
