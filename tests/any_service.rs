//! Putting the gateway in front of a service it was not built with: the example library
//! service (examples/library), loaded from a descriptor set, from its `.proto` file and through
//! server reflection; per-service backends; reloads; and the errors of a configuration the
//! gateway cannot serve.

mod common;

use common::{Lines, System, assert_status, http, send};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn library_proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/library/proto")
}

fn library_proto() -> PathBuf {
    library_proto_dir().join("library/v1/library.proto")
}

/// Starts library-server on an ephemeral port.
async fn start_library() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(library_example::serve(listener, std::future::pending()));
    addr
}

/// Starts a gateway with `config`; returns its base URL and its API (to reload it).
async fn start_gateway(config: gateway::Config) -> (String, Arc<gateway::api::Api>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gw = gateway::server::gateway(&config).await.unwrap();
    let api = gw.api().clone();
    tokio::spawn(async move { gateway::server::serve_gateway(listener, gw, &config, std::future::pending()).await });
    (base, api)
}

/// Every route kind of the library API, through the gateway at `base`.
async fn exercise_library(base: &str) {
    let book = json!({"title": "Dune", "genre": "GENRE_FICTION", "published": "1965-08-01T00:00:00Z"});
    // body: "book" with a nested path variable.
    let (status, created) = send(http().post(format!("{base}/v1/shelves/s1/books?bookId=dune")).json(&book)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["name"], "shelves/s1/books/dune");
    assert_eq!(created["genre"], "GENRE_FICTION");
    assert_eq!(created["published"], "1965-08-01T00:00:00Z");
    let other = json!({"title": "Cosmos", "genre": 2});
    assert_eq!(send(http().post(format!("{base}/v1/shelves/s1/books?book_id=cosmos")).json(&other)).await.0, 200);
    // {name=shelves/*/books/*}
    let (status, got) = send(http().get(format!("{base}/v1/shelves/s1/books/dune"))).await;
    assert_eq!((status, &got["title"]), (200, &json!("Dune")));
    // A server stream, filtered by an enum from the query.
    let resp = http().get(format!("{base}/v1/shelves/s1/books?genre=GENRE_SCIENCE")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut lines = Lines::new(resp);
    let first: Value = serde_json::from_str(&lines.next().await.unwrap()).unwrap();
    assert_eq!(first["result"]["title"], "Cosmos");
    assert!(lines.next().await.is_none());
    // A custom verb.
    let (status, archived) =
        send(http().post(format!("{base}/v1/shelves/s1/books/dune:archive")).json(&json!({}))).await;
    assert_eq!((status, &archived["archived"]), (200, &json!(true)));
    // Errors keep the status table.
    assert_status(&send(http().get(format!("{base}/v1/shelves/s1/books/missing"))).await, 404, 5);
    assert_status(&send(http().get(format!("{base}/v1/shelves/s1/books/dune/x"))).await, 404, 5);
    // A declared service the backend does not implement: 501 per request.
    let review =
        send(http().post(format!("{base}/v1/shelves/s1/books/dune/reviews")).json(&json!({"text": "good"}))).await;
    assert_status(&review, 501, 12);
}

/// A change to a gateway's configuration.
type Adjust = Box<dyn Fn(&mut gateway::Config)>;

/// The same API served from each kind of source: a descriptor set file, the `.proto` file
/// compiled at start-up, and the backend's server reflection.
#[tokio::test]
async fn serves_a_service_from_each_kind_of_source() {
    let library = start_library().await;
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("library.pb");
    std::fs::write(&set, library_example::FILE_DESCRIPTOR_SET).unwrap();
    let configs: Vec<(&str, Adjust)> = vec![
        ("descriptor set", Box::new(move |c| c.api.descriptor_sets = vec![set.clone()])),
        (
            "proto files",
            Box::new(|c| {
                c.api.protos = vec![library_proto()];
                c.api.proto_paths = vec![library_proto_dir()];
            }),
        ),
        ("reflection", Box::new(|c| c.api.reflect = true)),
    ];
    for (mode, adjust) in configs {
        // A fresh library per mode, so created books do not collide.
        let library = if mode == "descriptor set" { library } else { start_library().await };
        let mut config = gateway::Config::for_backend(format!("http://{library}"));
        adjust(&mut config);
        let (base, api) = start_gateway(config).await;
        let routes: Vec<String> = api.table().routes.bindings().map(|b| b.full_method().to_owned()).collect();
        assert!(routes.iter().any(|r| r == "library.v1.LibraryService.GetBook"), "{mode}: {routes:?}");
        exercise_library(&base).await;
        let doc: Value = http().get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
        assert!(
            doc["paths"]["/v1/{name}"].is_object()
                || doc["paths"].as_object().unwrap().keys().any(|k| k.contains("{name}")),
            "{mode}"
        );
        assert_eq!(doc["servers"][0]["url"], "/");
    }
}

/// One gateway, two APIs on two backends: the reference services (loaded from `switchyard
/// descriptors`' set) on the default backend, the library on the backend keyed `library.v1.*`.
#[tokio::test]
async fn each_service_goes_to_its_own_backend() {
    let sys = System::start().await;
    let library = start_library().await;
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.pb");
    std::fs::write(&reference, switchyard_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut config = gateway::Config::for_backend(format!("http://{}", sys.grpc));
    config.api.backends.push(format!("library.v1.*=http://{library}").parse().unwrap());
    config.api.descriptor_sets = vec![reference];
    config.api.protos = vec![library_proto()];
    config.api.proto_paths = vec![library_proto_dir()];
    let (base, _) = start_gateway(config).await;
    let (status, user) =
        send(http().post(format!("{base}/api/v1/users")).json(&json!({"name": "A", "email": "a@example.com"}))).await;
    assert_eq!(status, 200, "{user}");
    exercise_library(&base).await;
    let health = send(http().get(format!("{base}/healthz"))).await.1;
    let urls: Vec<&str> = health["backends"].as_array().unwrap().iter().map(|b| b["url"].as_str().unwrap()).collect();
    assert!(
        urls.contains(&format!("http://{library}").as_str()) && urls.contains(&format!("http://{}", sys.grpc).as_str()),
        "{urls:?}"
    );
}

/// The library proto with one more binding for GetBook (`/v2/...`).
fn with_v2_route(proto: &str) -> String {
    proto.replace(
        r#"option (google.api.http) = {get: "/v1/{name=shelves/*/books/*}"};"#,
        r#"option (google.api.http) = {
      get: "/v1/{name=shelves/*/books/*}"
      additional_bindings {get: "/v2/{name=shelves/*/books/*}"}
    };"#,
    )
}

/// A reload swaps in the new routes (and the document); one that does not compile is refused
/// with the file and line, and the previous routes keep serving.
#[tokio::test]
async fn reload_swaps_routes_and_refuses_a_broken_file() {
    let library = start_library().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("library/v1/library.proto");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let original = std::fs::read_to_string(library_proto()).unwrap();
    std::fs::write(&file, &original).unwrap();
    let mut config = gateway::Config::for_backend(format!("http://{library}"));
    config.api.protos = vec![file.clone()];
    config.api.proto_paths = vec![dir.path().to_path_buf()];
    let (base, api) = start_gateway(config).await;
    let book = json!({"title": "Dune"});
    assert_eq!(send(http().post(format!("{base}/v1/shelves/s/books?bookId=d")).json(&book)).await.0, 200);
    assert_status(&send(http().get(format!("{base}/v2/shelves/s/books/d"))).await, 404, 5);

    std::fs::write(&file, with_v2_route(&original)).unwrap();
    api.reload().await.unwrap();
    let (status, got) = send(http().get(format!("{base}/v2/shelves/s/books/d"))).await;
    assert_eq!((status, &got["title"]), (200, &json!("Dune")));
    let doc = http().get(format!("{base}/openapi.yaml")).send().await.unwrap().text().await.unwrap();
    assert!(doc.contains("/v2/"), "the document follows the reload");

    std::fs::write(&file, "syntax = \"proto3\";\npackage library.v1;\nmessage Broken {\n  int32 x = ;\n}\n").unwrap();
    let err = api.reload().await.unwrap_err().to_string();
    assert!(err.contains("library/v1/library.proto:4:"), "{err}");
    assert_eq!(send(http().get(format!("{base}/v2/shelves/s/books/d"))).await.0, 200);
}

/// Removes ANSI colour codes from a log line.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// SIGHUP makes the running `switchyard gateway` re-read its protos.
#[tokio::test]
async fn sighup_reloads_a_running_gateway() {
    let library = start_library().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("library/v1/library.proto");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let original = std::fs::read_to_string(library_proto()).unwrap();
    std::fs::write(&file, &original).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--backend", &format!("http://{library}")])
        .arg("--proto")
        .arg(&file)
        .arg("--proto-path")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(plain(&line));
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the gateway logs where it listens");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let base = format!("http://{addr}");
    assert_eq!(
        send(http().post(format!("{base}/v1/shelves/s/books?bookId=d")).json(&json!({"title": "T"}))).await.0,
        200
    );
    assert_status(&send(http().get(format!("{base}/v2/shelves/s/books/d"))).await, 404, 5);
    std::fs::write(&file, with_v2_route(&original)).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    let mut reloaded = false;
    for _ in 0..100 {
        if send(http().get(format!("{base}/v2/shelves/s/books/d"))).await.0 == 200 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(reloaded, "SIGHUP did not reload the API");
}

/// Runs `switchyard gateway` with a configuration it cannot serve; returns the exit status and
/// what it printed.
fn refused(proto: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api.proto"), proto).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--proto", "api.proto", "--proto-path"])
        .arg(dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Configuration errors end the gateway at start-up with exit status 2 and say what is wrong:
/// a `.proto` that does not compile (file:line:column), two RPCs bound to one route (both
/// named), a binding naming a field that does not exist or a repeated body field (the RPC and
/// the field named).
#[tokio::test]
async fn startup_errors_exit_2_and_say_where() {
    let head = "syntax = \"proto3\";\npackage shop.v1;\nimport \"google/api/annotations.proto\";\nmessage Item { string id = 1; repeated string tags = 2; string sku = 3; }\n";
    let (code, err) = refused("syntax = \"proto3\";\nmessage A {\n  int32 x = ;\n}\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("api.proto:3:"), "{err}");

    let (code, err) = refused(&format!(
        "{head}service Shop {{\n  rpc A(Item) returns (Item) {{ option (google.api.http) = {{get: \"/items/{{id}}\"}}; }}\n  rpc B(Item) returns (Item) {{ option (google.api.http) = {{get: \"/items/{{sku}}\"}}; }}\n}}\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("shop.v1.Shop.A") && err.contains("shop.v1.Shop.B"), "{err}");

    let (code, err) = refused(&format!(
        "{head}service Shop {{ rpc A(Item) returns (Item) {{ option (google.api.http) = {{get: \"/items/{{nope}}\"}}; }} }}\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("shop.v1.Shop.A") && err.contains("nope"), "{err}");

    let (code, err) = refused(&format!(
        "{head}service Shop {{ rpc A(Item) returns (Item) {{ option (google.api.http) = {{post: \"/items\" body: \"tags\"}}; }} }}\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("shop.v1.Shop.A") && err.contains("tags"), "{err}");
}
