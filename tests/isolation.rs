//! One client never hurts another: hostile requests get their own 4xx with a Status body, other
//! clients' live streams carry on, and every client connection is bounded in time and number.

mod common;

use common::{Lines, System, assert_status, eventually, http, new_order, new_user, send, ws_connect, ws_next, ws_send};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;

/// A gateway configuration with these header-read and idle timeouts.
fn timeouts(header_read: Duration, idle: Duration) -> impl FnOnce(&mut gateway::Config) {
    move |c| {
        c.header_read_timeout = header_read;
        c.idle_timeout = idle;
    }
}

fn addr(sys: &System) -> String {
    sys.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (EOF or reset), bounded; returns what it sent.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was not closed; it sent {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

/// The status and JSON body of a raw HTTP/1.1 response.
fn parse_response(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {text}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// Live SSE and NDJSON watchers and WebSocket chat participants keep working while hostile
/// clients send huge headers and metadata, fields the backend echoes in its errors, oversized
/// frames, half-sent headers and hundreds of idle connections: each hostile request that gets an
/// answer gets its own 4xx with a Status body, and the shared backend connections survive.
#[tokio::test]
async fn hostile_clients_do_not_hurt_bystanders() {
    let sys = System::start_gateway_with(timeouts(Duration::from_secs(1), Duration::from_secs(2))).await;
    let user = new_user(&sys, "bystander@example.com").await;
    let order_id = new_order(&sys, &user, 1).await["orderId"].as_str().unwrap().to_owned();

    // Bystanders: an SSE watch, an NDJSON watch, two chat participants.
    let sse = http()
        .get(sys.url(&format!("/api/v1/orders:watch?user_id={user}")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let ndjson = http().get(sys.url(&format!("/api/v1/orders:watch?orderId={order_id}"))).send().await.unwrap();
    assert_eq!((sse.status().as_u16(), ndjson.status().as_u16()), (200, 200));
    let mut a = ws_connect(&sys, "/api/v1/chat/iso").await;
    let mut b = ws_connect(&sys, "/api/v1/chat/iso").await;
    ws_send(&mut a, json!({"userId": "a"})).await;
    ws_send(&mut b, json!({"userId": "b"})).await;
    eventually("the watchers are subscribed", || {
        sys.subscribers(&format!("orders.user.{user}")) == 1
            && sys.subscribers(&format!("orders.order.{order_id}")) == 1
    })
    .await;
    eventually("both participants joined", || sys.subscribers("chat.iso") == 2).await;

    // Hostile requests, each from a client of its own.
    let users = sys.url("/api/v1/users");
    let huge = "h".repeat(40_000);
    assert_status(&send(http().get(sys.url("/healthz")).header("x-huge", &huge)).await, 431, 3);
    let metadata = "m".repeat(20_000);
    assert_status(&send(http().get(&users).header("grpc-metadata-tenant", &metadata)).await, 431, 3);
    // Many headers together over the size limit: the gateway's own 431.
    let mut many = http().get(&users);
    for i in 0..90 {
        many = many.header(format!("x-header-{i}"), "v".repeat(200));
    }
    assert_status(&send(many).await, 431, 3);
    // More header fields than the protocol layer parses (100): a 431 as well, without a body.
    let mut lots = http().get(&users);
    for i in 0..400 {
        lots = lots.header(format!("x-header-{i}"), "v");
    }
    assert_eq!(lots.send().await.unwrap().status().as_u16(), 431);
    // Values the backend repeats in its error messages.
    let long_email = format!("{}@example", "e".repeat(200_000));
    let (status, body) = send(http().post(&users).json(&json!({"name": "n", "email": long_email}))).await;
    assert_status(&(status, body.clone()), 400, 3);
    assert!(body.to_string().len() < 4096, "error body of {} bytes", body.to_string().len());
    let long_id = "i".repeat(8_000);
    let got = send(http().get(sys.url(&format!("/api/v1/users/{long_id}")))).await;
    assert_status(&got, 404, 5);
    assert!(got.1["message"].as_str().unwrap().len() <= 1024);
    let got = send(http().get(sys.url(&format!("/api/v1/users?pageToken={long_id}")))).await;
    assert_status(&got, 400, 3);
    // A WebSocket frame over the body limit: an error frame, then close code 1009.
    let big = ws_connect(&sys, "/api/v1/chat/other").await;
    let frame = json!({"userId": "x", "message": "w".repeat(5 << 20)}).to_string();
    let (mut tx, mut rx) = big.split();
    tokio::spawn(async move { tx.send(Ws::Text(frame.into())).await });
    let mut saw_error = false;
    let close = loop {
        match rx.next().await.expect("socket open").unwrap() {
            Ws::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["error"]["code"], 3, "{v}");
                saw_error = true;
            }
            Ws::Close(c) => break c,
            _ => {}
        }
    };
    assert!(saw_error);
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1009));
    // A connection that never finishes its headers is closed without an answer.
    let mut slow = TcpStream::connect(addr(&sys)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    assert!(until_closed(&mut slow).await.is_empty());
    // Hundreds of idle connections are closed by the idle timeout.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(addr(&sys)).await.unwrap());
    }
    for tcp in &mut idle {
        assert!(until_closed(tcp).await.is_empty());
    }

    // Every bystander carries on.
    let (status, _) = send(
        http().patch(sys.url(&format!("/api/v1/orders/{order_id}"))).json(&json!({"status": "ORDER_STATUS_PAID"})),
    )
    .await;
    assert_eq!(status, 200);
    let mut sse = Lines::new(sse);
    let event: Value = serde_json::from_str(sse.next().await.unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["status"], "ORDER_STATUS_PAID");
    let mut ndjson = Lines::new(ndjson);
    let line: Value = serde_json::from_str(&ndjson.next().await.unwrap()).unwrap();
    assert_eq!(line["result"]["status"], "ORDER_STATUS_PAID");
    ws_send(&mut a, json!({"userId": "a", "message": "still here"})).await;
    assert_eq!(ws_next(&mut a).await["message"], "still here");
    assert_eq!(ws_next(&mut b).await["message"], "still here");
    assert_eq!(send(http().get(sys.url(&format!("/api/v1/users/{user}")))).await.0, 200);
}

/// A live stream is never cut for being quiet: an SSE watch and a WebSocket outlast the idle and
/// header timeouts and still deliver.
#[tokio::test]
async fn live_streams_outlast_the_idle_timeout() {
    let sys = System::start_gateway_with(timeouts(Duration::from_millis(500), Duration::from_millis(500))).await;
    let user = new_user(&sys, "patient@example.com").await;
    let order_id = new_order(&sys, &user, 1).await["orderId"].as_str().unwrap().to_owned();
    let watch = http()
        .get(sys.url(&format!("/api/v1/orders:watch?user_id={user}")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut ws = ws_connect(&sys, "/api/v1/chat/quiet").await;
    ws_send(&mut ws, json!({"userId": "q"})).await;
    eventually("the watcher is subscribed", || sys.subscribers(&format!("orders.user.{user}")) == 1).await;
    // Several idle timeouts pass with nothing sent either way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let patch =
        http().patch(sys.url(&format!("/api/v1/orders/{order_id}"))).json(&json!({"status": "ORDER_STATUS_PAID"}));
    assert_eq!(send(patch).await.0, 200);
    let mut lines = Lines::new(watch);
    assert!(lines.next().await.unwrap().starts_with("data: "));
    ws_send(&mut ws, json!({"userId": "q", "message": "awake"})).await;
    assert_eq!(ws_next(&mut ws).await["message"], "awake");
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
async fn one_response(tcp: &mut TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no content-length: {head}"));
            if got.len() >= end + 4 + len {
                return head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
            .await
            .expect("an answer")
            .expect("the connection is open");
        assert!(n > 0, "closed before answering; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// A keep-alive connection lives as long as requests keep coming, however many idle timeouts
/// that adds up to; once quiet it is closed by the idle timeout, and a request head that
/// stops half-way is closed by the (shorter) header timeout, not left for the idle one.
#[tokio::test]
async fn keep_alive_connections_close_on_the_deadline_that_applies() {
    let sys = System::start_gateway_with(timeouts(Duration::from_secs(60), Duration::from_millis(400))).await;
    let mut tcp = TcpStream::connect(addr(&sys)).await.unwrap();
    for _ in 0..8 {
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert_eq!(one_response(&mut tcp).await, 200);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(until_closed(&mut tcp).await.is_empty());

    // Idle for a minute, headers for a quarter second: after a request, a half-sent head is
    // closed long before the idle deadline (`until_closed` gives up after 30 s).
    let sys = System::start_gateway_with(timeouts(Duration::from_millis(250), Duration::from_secs(60))).await;
    let mut tcp = TcpStream::connect(addr(&sys)).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert_eq!(one_response(&mut tcp).await, 200);
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    assert!(until_closed(&mut tcp).await.is_empty());
}

/// Beyond `--max-connections` a connection gets 503 (code 14) with `Connection: close`; a body
/// that stops arriving gets 408 once the body read timeout passes.
#[tokio::test]
async fn connection_limit_and_body_timeout() {
    let sys = System::start_gateway_with(|c| {
        c.max_connections = 3;
        c.body_read_timeout = Duration::from_millis(500);
    })
    .await;
    let held: Vec<TcpStream> = futures::future::join_all((0..3).map(|_| TcpStream::connect(addr(&sys))))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let resp = http().get(sys.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["connection"], "close");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 14, "{body}");
    drop(held);
    let mut answered = false;
    for _ in 0..100 {
        if http().get(sys.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "a freed connection slot was not reused");

    let mut tcp = TcpStream::connect(addr(&sys)).await.unwrap();
    tcp.write_all(
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na",
    )
    .await
    .unwrap();
    let (status, body) = parse_response(&until_closed(&mut tcp).await);
    assert_eq!((status, &body["code"]), (408, &json!(4)), "{body}");
}

/// Calls to the backend are bounded: live streams hold their slots, one more call waits in the
/// queue, and a call beyond the queue is answered 503 at once; freeing a slot lets the waiting
/// call through. `/healthz` shows the load.
#[tokio::test]
async fn backend_calls_are_bounded_with_a_short_queue() {
    let sys = System::start_gateway_with(|c| {
        c.backend_max_concurrency = 2;
        c.backend_queue = 1;
    })
    .await;
    let user = new_user(&sys, "queued@example.com").await;
    let w1 = http().get(sys.url(&format!("/api/v1/orders:watch?user_id={user}"))).send().await.unwrap();
    let w2 = http().get(sys.url(&format!("/api/v1/orders:watch?user_id={user}"))).send().await.unwrap();
    assert_eq!((w1.status().as_u16(), w2.status().as_u16()), (200, 200));
    let health = || async { send(http().get(sys.url("/healthz"))).await.1["backends"][0].clone() };
    assert_eq!(health().await["inFlight"], 2);
    let url = sys.url(&format!("/api/v1/users/{user}"));
    let waiting = tokio::spawn(async move { send(http().get(url)).await });
    let mut queued = false;
    for _ in 0..200 {
        if health().await["waiting"] == 1 {
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(queued, "the third call did not wait in the queue");
    let refused = send(http().get(sys.url(&format!("/api/v1/users/{user}")))).await;
    assert_status(&refused, 503, 14);
    assert!(refused.1["message"].as_str().unwrap().contains("capacity"), "{}", refused.1);
    drop(w1);
    assert_eq!(waiting.await.unwrap().0, 200);
    assert!(health().await["connections"].as_u64().unwrap() >= 1);
}

/// Many calls at once on one backend connection (whose writes the gateway coalesces) each get
/// their own answer, none is held back.
#[tokio::test]
async fn concurrent_calls_on_one_backend_connection_each_get_their_answer() {
    let sys = System::start_gateway_with(|c| c.backend_connections = 1).await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(new_user(&sys, &format!("crowd{i}@example.com")).await);
    }
    let client = http();
    let calls = (0..200).map(|i| {
        let id = users[i % users.len()].clone();
        let req = client.get(sys.url(&format!("/api/v1/users/{id}")));
        async move { (id, send(req).await) }
    });
    for (id, (status, body)) in futures::future::join_all(calls).await {
        assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())), "{body}");
    }
    assert_eq!(send(http().get(sys.url("/healthz"))).await.1["backends"][0]["connections"], 1);
}

/// What reaches the backend about the caller: one Authorization (the header wins over
/// Grpc-Metadata-Authorization), the gateway's request id, nothing the Connection header names,
/// and X-Forwarded-For / Forwarded from the gateway's own view unless the peer is a trusted proxy.
#[tokio::test]
async fn forwarded_headers_are_honest() {
    let sys = System::start().await;
    let echo = |sys: &System| {
        http()
            .post(sys.url("/api/v1/types/scalars:echo"))
            .header("Authorization", "Bearer real")
            .header("Grpc-Metadata-Authorization", "Bearer smuggled")
            .header("X-Request-Id", "mine")
            .header("Grpc-Metadata-X-Request-Id", "forged")
            .header("X-Forwarded-For", "6.6.6.6")
            .header("Grpc-Metadata-Echo-Secret", "s")
            .header("Connection", "keep-alive, grpc-metadata-echo-secret")
            .json(&json!({}))
    };
    let resp = echo(&sys).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    let all = |name: &str| h.get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(all("grpc-metadata-seen-authorization"), ["Bearer real"]);
    assert_eq!(all("grpc-metadata-seen-x-request-id"), ["mine"]);
    assert_eq!(all("grpc-metadata-seen-x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(all("grpc-metadata-seen-x-forwarded-proto"), ["http"]);
    assert!(all("grpc-metadata-seen-forwarded")[0].starts_with("for=127.0.0.1;proto=http"));
    assert!(all("grpc-metadata-echo-secret").is_empty());

    let trusting = System::start_gateway_with(|c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let resp = echo(&trusting).send().await.unwrap();
    let xff: Vec<_> = resp.headers().get_all("grpc-metadata-seen-x-forwarded-for").iter().collect();
    assert_eq!(xff, ["6.6.6.6, 127.0.0.1"]);
}
