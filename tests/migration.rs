//! Migration mode end to end: the gateway in front of the legacy REST API (the bench's legacy
//! service, on the backend's database), passing through what gRPC does not serve, shadowing,
//! canarying and switching routes by plan; the diff log and its report; protos imported from
//! OpenAPI documents.

mod common;

use common::{System, assert_status, http, send};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Starts a legacy API; returns its address.
async fn serve_legacy(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The bench's legacy REST service on the backend's database.
async fn legacy_service(sys: &System) -> SocketAddr {
    let store = backend::store::SqliteStore::open(&sys.backend_config.database).await.unwrap();
    let dir = sys.dir.path().join("legacy-uploads");
    std::fs::create_dir_all(&dir).unwrap();
    serve_legacy(bench::legacy::router(Arc::new(store), dir)).await
}

/// A gateway with migration mode in front of `backend` and `legacy`; returns its base URL and
/// the migration handle (to reload its plan).
async fn start(backend: SocketAddr, args: migrate::Args) -> (String, Arc<migrate::Migration>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = gateway::Config::for_backend(format!("http://{backend}"));
    let migration = Arc::new(migrate::Migration::start(&args, Vec::new()).unwrap());
    let gw = gateway::server::gateway(&config).await.unwrap().with_dispatcher(migration.clone());
    tokio::spawn(async move { gateway::server::serve_gateway(listener, gw, &config, std::future::pending()).await });
    (base, migration)
}

fn args(legacy: Option<SocketAddr>, plan: Option<&Path>, diff_log: Option<&Path>) -> migrate::Args {
    migrate::Args {
        legacy: legacy.map(|a| format!("http://{a}")),
        plan: plan.map(Path::to_path_buf),
        diff_log: diff_log.map(Path::to_path_buf),
        legacy_timeout: Duration::from_secs(30),
        legacy_max_body_size: None,
    }
}

/// A legacy API that answers what it received: method, target, headers and body.
fn echo_app() -> axum::Router {
    use axum::extract::Request;
    axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .fallback(|req: Request| async move {
            let (parts, body) = req.into_parts();
            let body = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
            let headers: serde_json::Map<String, Value> = parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("?").to_owned())))
                .collect();
            let answer = json!({
                "method": parts.method.as_str(),
                "target": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(""),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            (
                axum::http::StatusCode::IM_A_TEAPOT,
                [("x-legacy", "yes"), ("content-type", "application/json")],
                answer.to_string(),
            )
        })
}

/// A request no gRPC binding matches goes to the legacy API unchanged: method, path and query
/// byte for byte, headers (hop-by-hop ones dropped, X-Forwarded-* added), body; the answer comes
/// back with its status and headers, uncompressed. The gateway's own paths never leave it.
#[tokio::test]
async fn unmatched_requests_pass_through_unchanged() {
    let sys = System::start().await;
    let legacy = serve_legacy(echo_app()).await;
    let mut a = args(Some(legacy), None, None);
    a.legacy_timeout = Duration::from_millis(500);
    a.legacy_max_body_size = Some(1000);
    let (base, _) = start(sys.grpc, a).await;

    let resp = http()
        .post(format!("{base}/legacy/only/%7Eodd%20path?b=2&a=%2F1&a=x+y"))
        .header("X-Custom", "kept")
        .header("Connection", "keep-alive, X-Hop")
        .header("X-Hop", "dropped")
        .header("Accept-Encoding", "gzip")
        .body("raw body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 418);
    assert_eq!(resp.headers()["x-legacy"], "yes");
    assert!(resp.headers().get("content-encoding").is_none(), "no compression added");
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["target"], "/legacy/only/%7Eodd%20path?b=2&a=%2F1&a=x+y");
    assert_eq!(seen["body"], "raw body");
    let h = &seen["headers"];
    assert_eq!(h["x-custom"], "kept");
    assert!(h.get("x-hop").is_none() && h.get("connection").is_none(), "{h}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(h["x-forwarded-host"].as_str().unwrap().starts_with("127.0.0.1:"));

    // A path with a binding, under another method, is the legacy API's too.
    let (status, seen) = send(http().put(format!("{base}/api/v1/users/u1")).body("{}")).await;
    assert_eq!((status, &seen["method"]), (418, &json!("PUT")));
    // The gateway's own paths never leave it.
    assert_eq!(send(http().get(format!("{base}/healthz"))).await.1["status"], "SERVING");
    assert_status(&send(http().get(format!("{base}/_switchyard/anything"))).await, 404, 5);
    let status = send(http().get(format!("{base}/_switchyard/migration"))).await.1;
    assert_eq!(status["legacy"], format!("http://{legacy}"));
    // Bounds: the wait for the legacy's headers, and the declared body size.
    assert_status(&send(http().get(format!("{base}/slow"))).await, 504, 4);
    assert_status(&send(http().post(format!("{base}/big")).body(vec![b'x'; 2000])).await, 413, 3);
    // gRPC routes still answer from gRPC.
    let (status, user) =
        send(http().post(format!("{base}/api/v1/users")).json(&json!({"name": "G", "email": "g@example.com"}))).await;
    assert_eq!((status, user["createdAt"].is_object()), (200, true));
}

/// An unreachable legacy API is a 502 with a Status body naming it.
#[tokio::test]
async fn unreachable_legacy_is_named() {
    let sys = System::start().await;
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let (base, _) = start(sys.grpc, args(Some(gone), None, None)).await;
    let got = send(http().get(format!("{base}/not/grpc"))).await;
    assert_status(&got, 502, 14);
    assert_eq!(got.1["message"], format!("legacy API http://{gone} is unavailable"));
}

fn write_plan(dir: &Path, text: &str) -> std::path::PathBuf {
    let file = dir.join("plan.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// Each mode of the plan: legacy answers from the old API, shadow answers from it and compares
/// gRPC in the background (diff log, counters, report), canary sends the clients whose sticky
/// key falls in the share to gRPC and the rest (and clients without a key) to legacy, grpc is
/// gRPC alone. A reloaded plan takes effect; a broken one is refused and the old one stays.
#[tokio::test]
async fn plan_modes_shadow_and_report() {
    let sys = System::start().await;
    let legacy = legacy_service(&sys).await;
    let dir = tempfile::tempdir().unwrap();
    let diff_log = dir.path().join("diff.jsonl");
    let plan = write_plan(
        dir.path(),
        r#"
[defaults]
sticky = "header:authorization"

[[route]]
match = "GET /api/v1/users/{user_id}"
mode = "shadow"
rename = { created_at = "createdAt" }

[[route]]
rpc = "user.v1.UserService.ListUsers"
mode = "canary"
percent = 100

[[route]]
match = "POST /api/v1/users"
mode = "legacy"
"#,
    );
    let (base, migration) = start(sys.grpc, args(Some(legacy), Some(&plan), Some(&diff_log))).await;

    // legacy: the old API's JSON style (snake_case, numbers for 64-bit fields).
    let (status, created) = send(
        http()
            .post(format!("{base}/api/v1/users"))
            .json(&json!({"name": "Old", "email": "old@example.com", "age": 40})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert!(created["created_at"]["timestamp"].is_number(), "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // shadow: legacy answers; gRPC is compared in the background.
    let (status, got) = send(http().get(format!("{base}/api/v1/users/{id}"))).await;
    assert_eq!((status, got["created_at"].is_object()), (200, true));
    assert_eq!(send(http().get(format!("{base}/api/v1/users/no-such-user"))).await.0, 404);
    let mut counts = Value::Null;
    for _ in 0..100 {
        counts = send(http().get(format!("{base}/_switchyard/migration"))).await.1;
        if counts["routes"][0]["compared"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shadowed = &counts["routes"][0];
    assert_eq!(
        (&shadowed["route"], &shadowed["mode"], &shadowed["compared"]),
        (&json!("GET /api/v1/users/{user_id}"), &json!("shadow"), &json!(2)),
        "{counts}"
    );
    let log = std::fs::read_to_string(&diff_log).unwrap();
    let records: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["route"], "GET /api/v1/users/{user_id}");
        assert!(r["legacy"]["latencyMs"].is_number() && r["grpc"]["latencyMs"].is_number());
        assert!(r["requestId"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // The found user: equal but for what the two APIs really print differently.
    let found = records.iter().find(|r| r["legacy"]["status"] == 200).unwrap();
    let paths: Vec<&str> = found["differences"]
        .as_array()
        .map(|d| d.iter().map(|d| d["path"].as_str().unwrap()).collect())
        .unwrap_or_default();
    assert!(!paths.iter().any(|p| p.starts_with("$.createdAt")), "renamed and number-normalised: {paths:?}");
    let (reports, _) = migrate::report::build(log.as_bytes()).unwrap();
    assert_eq!((reports[0].compared, reports[0].route.as_str()), (2, "GET /api/v1/users/{user_id}"));

    // canary at 100%: a client with a key gets gRPC, one without gets legacy.
    let grpc_page = send(http().get(format!("{base}/api/v1/users")).header("Authorization", "Bearer alice")).await.1;
    assert!(grpc_page.get("nextPageToken").is_some(), "{grpc_page}");
    let legacy_page = send(http().get(format!("{base}/api/v1/users"))).await.1;
    assert!(legacy_page.get("next_page_token").is_some(), "{legacy_page}");

    // Reload: everything to gRPC; then a broken plan is refused and the last good one stays.
    std::fs::write(&plan, "[[route]]\nmatch = \"POST /api/v1/users\"\nmode = \"grpc\"\n").unwrap();
    gateway::dispatch::Dispatcher::reload(migration.as_ref()).unwrap();
    let (status, created) =
        send(http().post(format!("{base}/api/v1/users")).json(&json!({"name": "New", "email": "new@example.com"})))
            .await;
    assert_eq!((status, created["createdAt"].is_object()), (200, true), "{created}");
    std::fs::write(&plan, "[[route]]\nmatch = \"POST /api/v1/users\"\nmode = \"sideways\"\n").unwrap();
    let err = gateway::dispatch::Dispatcher::reload(migration.as_ref()).unwrap_err();
    assert!(err.contains("plan.toml:1"), "{err}");
    let (_, created) =
        send(http().post(format!("{base}/api/v1/users")).json(&json!({"name": "Newer", "email": "newer@example.com"})))
            .await;
    assert!(created["createdAt"].is_object(), "the last good plan keeps serving: {created}");
}

/// A plan that cannot be used stops the gateway at start-up with exit status 2 and the line.
#[tokio::test]
async fn a_bad_plan_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path(), "[[route]]\nmatch = \"GET /x\"\nmode = \"canary\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--legacy", "http://127.0.0.1:9", "--migration"])
        .arg(&plan)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("plan.toml:1") && err.contains("percent"), "{err}");
}

/// The (method, path) pairs a document describes, with path parameters unnamed.
fn operations_of(doc: &Value, base: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.insert(format!("{} {}", method.to_uppercase(), unnamed(&format!("{base}{path}"))));
            }
        }
    }
    out
}

fn unnamed(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                depth += 1;
                out.push('*');
            }
            '}' => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// `switchyard import` writes protos that compile and, served by the gateway, route the same
/// methods and paths as the document they came from: the project's own openapi.yaml, and a
/// pet store in the style of the Swagger Petstore (OpenAPI 3.0).
#[tokio::test]
async fn imported_protos_serve_the_same_paths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (doc, package, base) in
        [("openapi.yaml", "reference.v1", ""), ("tests/fixtures/petstore.yaml", "petstore.v3", "/api/v3")]
    {
        let out = tempfile::tempdir().unwrap();
        let done = migrate::import::import(&root.join(doc), package, out.path()).unwrap();
        let set = gateway::sources::compile_protos(std::slice::from_ref(&done.file), &[out.path().to_path_buf()])
            .unwrap_or_else(|e| panic!("{doc}: {e}"));
        let pool = prost_reflect::DescriptorPool::decode(set.as_slice()).unwrap();
        let bindings = gateway::rules::load_bindings(&pool).unwrap();
        let served: std::collections::BTreeSet<String> =
            bindings.iter().map(|b| format!("{} {}", b.http_method, unnamed(&b.template.to_string()))).collect();
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let source: Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!(served, operations_of(&source, base), "{doc}");
    }
}
