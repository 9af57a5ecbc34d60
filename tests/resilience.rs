//! What users see when things go wrong: a stopped backend, a restarted one, and hostile input.

mod common;

use common::{System, assert_status, http, send};
use serde_json::json;

/// With the backend stopped the gateway answers 503 UNAVAILABLE with a Status body and still
/// serves its own errors; when the backend returns on the same database, data written before
/// is there and the gateway reconnects by itself.
#[tokio::test]
async fn backend_down_then_restarted_on_the_same_file() {
    let mut sys = System::start().await;
    let (status, user) =
        send(http().post(sys.url("/api/v1/users")).json(&json!({"name": "Kept", "email": "kept@example.com"}))).await;
    assert_eq!(status, 200);
    let id = user["id"].as_str().unwrap().to_owned();

    sys.stop_backend().await;
    let down = send(http().get(sys.url(&format!("/api/v1/users/{id}")))).await;
    assert_status(&down, 503, 14);
    assert_status(&send(http().get(sys.url("/no/such/route"))).await, 404, 5);
    assert_status(&send(http().post(sys.url("/api/v1/users")).body("{")).await, 400, 3);

    // The first call after the restart goes to a fresh connection.
    sys.restart_backend().await;
    let back = send(http().get(sys.url(&format!("/api/v1/users/{id}")))).await;
    assert_eq!(back, (200, user));
}

/// The 503 for an unreachable backend names the backend, not the operating system's error.
#[tokio::test]
async fn unreachable_backend_is_named() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = gateway::Config::for_backend(format!("http://{dead}"));
    tokio::spawn(async move { gateway::run(listener, &config, std::future::pending()).await });
    let got = send(http().get(format!("{base}/api/v1/users"))).await;
    assert_status(&got, 503, 14);
    assert_eq!(got.1["message"], format!("backend http://{dead} is unavailable"));
}

/// A backend that answers with response headers over the gateway's limit fails that call alone
/// (500, INTERNAL); the next call on the same connections succeeds.
#[tokio::test]
async fn oversized_response_metadata_fails_only_its_call() {
    use switchyard_proto::types::v1::types_service_server::{TypesService, TypesServiceServer};
    use switchyard_proto::types::v1::{Event, Response as Resp, ScalarTypes};
    /// A backend that answers with 70 KB of metadata when asked to.
    struct Loud;
    #[tonic::async_trait]
    impl TypesService for Loud {
        async fn echo_scalars(
            &self,
            req: tonic::Request<ScalarTypes>,
        ) -> Result<tonic::Response<ScalarTypes>, tonic::Status> {
            let loud = req.metadata().contains_key("loud");
            let mut resp = tonic::Response::new(req.into_inner());
            if loud {
                resp.metadata_mut().insert("big", "b".repeat(70_000).parse().unwrap());
            }
            Ok(resp)
        }
        async fn echo_event(&self, req: tonic::Request<Event>) -> Result<tonic::Response<Event>, tonic::Status> {
            Ok(tonic::Response::new(req.into_inner()))
        }
        async fn echo_response(&self, req: tonic::Request<Resp>) -> Result<tonic::Response<Resp>, tonic::Status> {
            Ok(tonic::Response::new(req.into_inner()))
        }
    }
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(grpc);
    tokio::spawn(
        tonic::transport::Server::builder().add_service(TypesServiceServer::new(Loud)).serve_with_incoming(incoming),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = gateway::Config::for_backend(format!("http://{grpc_addr}"));
    tokio::spawn(async move { gateway::run(listener, &config, std::future::pending()).await });
    let url = format!("{base}/api/v1/types/scalars:echo");
    assert_eq!(send(http().post(&url).json(&serde_json::json!({}))).await.0, 200);
    let loud = send(http().post(&url).header("grpc-metadata-loud", "1").json(&serde_json::json!({}))).await;
    assert_status(&loud, 500, 13);
    let (status, body) = send(http().post(&url).json(&serde_json::json!({"int32Field": 7}))).await;
    assert_eq!((status, &body["int32Field"]), (200, &serde_json::json!(7)));
}

/// Malformed requests get a 4xx with a Status body, never a 500.
#[tokio::test]
async fn malformed_input_is_a_client_error() {
    let sys = System::start().await;
    let users = sys.url("/api/v1/users");
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (http().post(&users).body("{not json"), 400),
        (http().post(&users).body("[1, 2]"), 400),
        (http().post(&users).body("\"text\""), 400),
        (http().post(&users).json(&json!({"name": 5})), 400),
        (http().post(&users).json(&json!({"age": "old"})), 400),
        (http().post(&users).json(&json!({"age": 1e99})), 400),
        (http().post(&users).json(&json!({"age": 1.5})), 400),
        (http().post(&users).body(b"{\"name\": \"\xff\xfe\"}".to_vec()), 400),
        (http().post(&users).header("Content-Type", "application/xml").body("<user/>"), 415),
        (http().post(&users).body(vec![b' '; 5 * 1024 * 1024]), 413),
        (http().get(sys.url("/api/v1/users/%ZZ")), 400),
        (http().get(sys.url("/api/v1/users/%C3%28")), 400),
        (http().get(sys.url("/api/v1/users?page_size=%FF")), 400),
        (http().get(sys.url("/api/v1/users?page_size=1&page_size=2")), 400),
        (http().get(sys.url("/api/v1/nothing")), 404),
        (http().get(sys.url("/")), 404),
        (http().put(&users), 405),
        (http().get(&users).header("Grpc-Timeout", "soon"), 400),
        (http().get(&users).header("Grpc-Metadata-Trace-Bin", "!!!"), 400),
    ];
    for (req, want) in cases {
        let req = req.build().unwrap();
        let what = format!("{} {}", req.method(), req.url());
        let resp = http().execute(req).await.unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert_eq!(status, want, "{what}: {body}");
        assert!(body["code"].as_i64().is_some() && body["message"].is_string(), "{what}: {body}");
    }
}

/// A Grpc-Timeout that has already run out fails fast with 504 DEADLINE_EXCEEDED, as a gRPC
/// client with an expired deadline does; a generous one passes.
#[tokio::test]
async fn deadlines() {
    let sys = System::start().await;
    let expired = send(http().get(sys.url("/api/v1/users")).header("Grpc-Timeout", "0m")).await;
    assert_status(&expired, 504, 4);
    // A deadline that passes before the call would start never reaches the backend.
    let create = http()
        .post(sys.url("/api/v1/users"))
        .header("Grpc-Timeout", "1n")
        .json(&serde_json::json!({"name": "Late", "email": "late@example.com"}));
    assert_status(&send(create).await, 504, 4);
    let (_, list) = send(http().get(sys.url("/api/v1/users"))).await;
    assert!(list["users"].as_array().unwrap().is_empty(), "{list}");
    let (status, _) = send(http().get(sys.url("/api/v1/users")).header("Grpc-Timeout", "10S")).await;
    assert_eq!(status, 200);
}

/// With `--cors-origin`, browsers on that origin get CORS headers and preflights are answered;
/// without it, none are sent.
#[tokio::test]
async fn cors_only_when_configured() {
    let sys = System::start().await;
    let resp = http().get(sys.url("/api/v1/users")).header("Origin", "https://app.example").send().await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = gateway::Config::for_backend(format!("http://{}", sys.grpc));
    config.cors_origins = vec!["https://app.example".into()];
    tokio::spawn(async move { gateway::run(listener, &config, std::future::pending()).await });
    let pre = http()
        .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/users"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://app.example");
    let resp = http().get(format!("{base}/api/v1/users")).header("Origin", "https://app.example").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://app.example");
    let other =
        http().get(format!("{base}/api/v1/users")).header("Origin", "https://evil.example").send().await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// HTTP hygiene (RFC 9112 §3.2, gRPC metadata rules): an HTTP/1.1 request with no Host header
/// or with two gets 400, and so does a header value gRPC metadata cannot carry.
#[tokio::test]
async fn http_hygiene() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sys = System::start().await;
    let addr = sys.base.trim_start_matches("http://").to_owned();
    for head in [
        "GET /api/v1/users HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /api/v1/users HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        "GET /api/v1/users HTTP/1.1\r\nHost: a\r\nGrpc-Metadata-Name: caf\u{e9}\r\nConnection: close\r\n\r\n",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{head:?} -> {answer}");
        assert!(answer.contains("\"code\":3"), "{answer}");
    }
}
