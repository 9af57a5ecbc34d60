//! All three streaming kinds, over native gRPC and over HTTP (NDJSON, SSE, raw bytes, WebSocket).

mod common;

use base64::Engine as _;
use common::{Lines, System, assert_status, eventually, http, new_order, new_user, send, ws_connect, ws_next, ws_send};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchyard_proto::chat::v1::ChatMessage;
use switchyard_proto::chat::v1::chat_service_client::ChatServiceClient;
use switchyard_proto::order::v1::order_service_client::OrderServiceClient;
use switchyard_proto::order::v1::{GetOrdersRequest, OrderStatus, StreamRequest};
use switchyard_proto::upload::v1::Chunk;
use switchyard_proto::upload::v1::upload_service_client::UploadServiceClient;
use tokio_tungstenite::tungstenite::Message as Ws;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// GetOrders streams a user's orders in order, in full or limited, as NDJSON, SSE and gRPC;
/// errors before the first message get the status table's HTTP status.
#[tokio::test]
async fn orders_stream_over_every_encoding() {
    let sys = System::start().await;
    let user = new_user(&sys, "buyer@example.com").await;
    let mut ids = Vec::new();
    for q in 1..=5 {
        ids.push(new_order(&sys, &user, q).await["orderId"].clone());
    }

    let resp = http().get(sys.url(&format!("/api/v1/users/{user}/orders"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut lines = Lines::new(resp);
    let mut got = Vec::new();
    while let Some(line) = lines.next().await {
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["result"]["status"], "ORDER_STATUS_PENDING");
        assert_eq!(v["result"]["total"], 2.5 * f64::from(got.len() as i32 + 1));
        got.push(v["result"]["orderId"].clone());
    }
    assert_eq!(got, ids);

    let resp = http().get(sys.url(&format!("/api/v1/users/{user}/orders?limit=2"))).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");

    let resp = http()
        .get(sys.url(&format!("/api/v1/users/{user}/orders?limit=3")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(events.iter().map(|e| e["orderId"].clone()).collect::<Vec<_>>(), ids[..3]);

    let mut client = OrderServiceClient::new(sys.channel().await);
    let mut stream =
        client.get_orders(GetOrdersRequest { user_id: user.clone(), limit: 0 }).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(o) = stream.message().await.unwrap() {
        assert_eq!(json!(o.order_id), ids[n]);
        n += 1;
    }
    assert_eq!(n, 5);

    assert_status(&send(http().get(sys.url("/api/v1/users/nobody/orders"))).await, 404, 5);
    assert_status(&send(http().get(sys.url(&format!("/api/v1/users/{user}/orders?limit=-1")))).await, 400, 3);
    // A user with orders cannot be deleted.
    assert_status(&send(http().delete(sys.url(&format!("/api/v1/users/{user}")))).await, 400, 9);
}

/// Watchers over gRPC, SSE and NDJSON all see a change another client makes; a watcher that
/// disconnects frees its server-side subscription.
#[tokio::test]
async fn watchers_see_changes_and_leave_cleanly() {
    let sys = System::start().await;
    let user = new_user(&sys, "watched@example.com").await;
    let order = new_order(&sys, &user, 1).await;
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let user_topic = format!("orders.user.{user}");
    let order_topic = format!("orders.order.{order_id}");

    let mut client = OrderServiceClient::new(sys.channel().await);
    let mut grpc_watch = client
        .stream_order_updates(StreamRequest { user_id: user.clone(), order_id: String::new() })
        .await
        .unwrap()
        .into_inner();
    // The headers of an idle watch arrive at once: send() returns before any change.
    let sse = http()
        .get(sys.url(&format!("/api/v1/orders:watch?user_id={user}")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let ndjson = http().get(sys.url(&format!("/api/v1/orders:watch?orderId={order_id}"))).send().await.unwrap();
    assert_eq!(ndjson.status(), 200);
    eventually("both user watchers are subscribed", || sys.subscribers(&user_topic) == 2).await;
    eventually("the order watcher is subscribed", || sys.subscribers(&order_topic) == 1).await;

    let (status, paid) = send(
        http().patch(sys.url(&format!("/api/v1/orders/{order_id}"))).json(&json!({"status": "ORDER_STATUS_PAID"})),
    )
    .await;
    assert_eq!((status, &paid["status"]), (200, &json!("ORDER_STATUS_PAID")));

    let update = grpc_watch.message().await.unwrap().unwrap();
    assert_eq!((update.order_id.as_str(), update.status()), (order_id.as_str(), OrderStatus::Paid));
    let mut sse_lines = Lines::new(sse);
    let event: Value = serde_json::from_str(sse_lines.next().await.unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!((&event["orderId"], &event["status"]), (&json!(order_id), &json!("ORDER_STATUS_PAID")));
    let mut nd_lines = Lines::new(ndjson);
    let line: Value = serde_json::from_str(&nd_lines.next().await.unwrap()).unwrap();
    assert_eq!(line["result"]["status"], "ORDER_STATUS_PAID");
    assert!(line["result"]["updatedAt"].as_str().unwrap().ends_with('Z'));

    // Skipping a step is refused.
    let skip = send(
        http().patch(sys.url(&format!("/api/v1/orders/{order_id}"))).json(&json!({"status": "ORDER_STATUS_DELIVERED"})),
    )
    .await;
    assert_status(&skip, 400, 9);

    drop(sse_lines);
    eventually("the SSE watcher is gone", || sys.subscribers(&user_topic) == 1).await;
    drop(grpc_watch);
    eventually("the gRPC watcher is gone", || sys.subscribers(&user_topic) == 0).await;
    drop(nd_lines);
    eventually("the NDJSON watcher is gone", || sys.subscribers(&order_topic) == 0).await;

    let both = send(http().get(sys.url(&format!("/api/v1/orders:watch?userId={user}&orderId={order_id}")))).await;
    assert_status(&both, 400, 3);
    assert_status(&send(http().get(sys.url("/api/v1/orders:watch?userId=ghost"))).await, 404, 5);
}

fn test_file(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn leftovers(sys: &System) -> Vec<String> {
    std::fs::read_dir(&sys.backend_config.upload_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn download_raw(sys: &System, file_id: &str) -> Vec<u8> {
    let resp = http()
        .get(sys.url(&format!("/api/v1/uploads/{file_id}:download")))
        .header("Accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    resp.bytes().await.unwrap().to_vec()
}

/// A few MiB uploaded over gRPC, NDJSON and a raw body come back byte for byte (raw and NDJSON
/// downloads), with the SHA-256 the upload reported.
#[tokio::test]
async fn uploads_round_trip_over_every_encoding() {
    let sys = System::start().await;
    let data = test_file(3 * 1024 * 1024 + 123, 1);
    let want = sha(&data);

    let mut client = UploadServiceClient::new(sys.channel().await);
    let chunks: Vec<Chunk> = data
        .chunks(64 * 1024)
        .enumerate()
        .map(|(i, c)| Chunk { upload_id: "grpc-1".into(), sequence: i as i32, data: c.to_vec() })
        .collect();
    let grpc = client.upload_chunks(futures::stream::iter(chunks)).await.unwrap().into_inner();
    assert!(grpc.success);
    assert_eq!((grpc.size as usize, grpc.sha256.as_str()), (data.len(), want.as_str()));

    let ndjson: String = data
        .chunks(100_000)
        .enumerate()
        .map(|(i, c)| format!("{}\n", json!({"uploadId": "nd-1", "sequence": i, "data": B64.encode(c)})))
        .collect();
    let (status, nd) =
        send(http().post(sys.url("/api/v1/uploads")).header("Content-Type", "application/x-ndjson").body(ndjson)).await;
    assert_eq!(status, 200, "{nd}");
    assert_eq!(
        (nd["sha256"].as_str().unwrap(), nd["size"].as_str().unwrap()),
        (want.as_str(), data.len().to_string().as_str())
    );

    let (status, raw) = send(
        http()
            .post(sys.url("/api/v1/uploads?upload_id=raw-1"))
            .header("Content-Type", "application/octet-stream")
            .body(data.clone()),
    )
    .await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(raw["sha256"], want.as_str());

    for id in [grpc.file_id.as_str(), nd["fileId"].as_str().unwrap(), raw["fileId"].as_str().unwrap()] {
        let back = download_raw(&sys, id).await;
        assert!(back == data, "raw download of {id} differs");
        let (status, info) = send(http().get(sys.url(&format!("/api/v1/uploads/{id}")))).await;
        assert_eq!((status, &info["sha256"]), (200, &json!(want)));
    }
    let (_, info) = send(http().get(sys.url(&format!("/api/v1/uploads/{}", raw["fileId"].as_str().unwrap())))).await;
    assert_eq!(info["uploadId"], "raw-1");

    let resp = http().get(sys.url(&format!("/api/v1/uploads/{}:download", grpc.file_id))).send().await.unwrap();
    let text = resp.text().await.unwrap();
    let mut back = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["result"]["sequence"], i);
        back.extend(B64.decode(v["result"]["data"].as_str().unwrap()).unwrap());
    }
    assert!(back == data, "NDJSON download differs");
    assert_status(&send(http().get(sys.url("/api/v1/uploads/nope:download"))).await, 404, 5);
}

/// Gaps, duplicates, mixed ids, bad lines, oversize files and cancelled uploads are refused and
/// leave nothing on disk.
#[tokio::test]
async fn bad_and_cancelled_uploads_leave_nothing_behind() {
    let sys = System::start_with(|c| c.max_upload_size = 1024 * 1024).await;
    let mut client = UploadServiceClient::new(sys.channel().await);
    let chunk = |id: &str, seq: i32| Chunk { upload_id: id.into(), sequence: seq, data: vec![seq as u8; 1000] };
    for (chunks, what) in [
        (vec![chunk("a", 0), chunk("a", 2)], "gap"),
        (vec![chunk("a", 0), chunk("a", 0)], "duplicate"),
        (vec![chunk("a", 1)], "not starting at 0"),
        (vec![chunk("a", 0), chunk("b", 1)], "mixed upload_id"),
    ] {
        let err = client.upload_chunks(futures::stream::iter(chunks)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err:?}");
    }

    let gap = format!("{}\n{}\n", json!({"sequence": 0, "data": "AAAA"}), json!({"sequence": 5, "data": "AAAA"}));
    assert_status(&send(http().post(sys.url("/api/v1/uploads")).body(gap)).await, 400, 3);
    eventually("the gap upload is cleaned up", || leftovers(&sys).is_empty()).await;
    let bad_line = format!("{}\nnot json\n", json!({"sequence": 0, "data": "AAAA"}));
    assert_status(&send(http().post(sys.url("/api/v1/uploads")).body(bad_line)).await, 400, 3);

    eventually("the bad-line upload is cleaned up", || leftovers(&sys).is_empty()).await;
    let too_big =
        send(http().post(sys.url("/api/v1/uploads")).header("Content-Type", "application/octet-stream").body(vec![
            1u8;
            2 * 1024
                * 1024
        ]))
        .await;
    assert_status(&too_big, 400, 3);
    assert!(too_big.1["message"].as_str().unwrap().contains("1048576"), "{}", too_big.1);

    eventually("refused gateway uploads are cleaned up", || leftovers(&sys).is_empty()).await;
    // A gRPC client that cancels mid-upload (tonic's cancellation handle sends RST_STREAM).
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(chunk("c", 0)).await.unwrap();
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let cancel = req.cancellation_handle();
    let call = tokio::spawn({
        let mut client = client.clone();
        async move { client.upload_chunks(req).await }
    });
    eventually("the upload has started", || leftovers(&sys).iter().any(|f| f.ends_with(".part"))).await;
    cancel.cancel();
    assert_eq!(call.await.unwrap().unwrap_err().code(), tonic::Code::Cancelled);
    eventually("the cancelled upload is cleaned up", || leftovers(&sys).is_empty()).await;
    drop(tx);
}

/// ProcessBatch applies every operation and reports each failure without stopping.
#[tokio::test]
async fn batches_report_per_item_errors() {
    let sys = System::start().await;
    let lines = [
        json!({"processId": "b1", "data": {"createUser": {"name": "A", "email": "a@example.com", "age": 1}}}),
        json!({"processId": "b1", "data": {"createUser": {"name": "", "email": "bad", "age": 1}}}),
        json!({"processId": "b1", "data": {"deleteUser": {"userId": "ghost"}}}),
        json!({"data": {"createUser": {"name": "B", "email": "b@example.com"}}}),
        json!({"processId": "b1"}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let (status, r) =
        send(http().post(sys.url("/api/v1/batches")).header("Content-Type", "application/x-ndjson").body(body)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!((&r["processId"], &r["processedCount"]), (&json!("b1"), &json!(2)));
    let fields: Vec<&str> = r["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["requests[1].name", "requests[1].email", "requests[2]", "requests[4].data"]);
    assert_eq!(r["errors"][2]["code"], 5);
    let (_, list) = send(http().get(sys.url("/api/v1/users"))).await;
    assert_eq!(list["users"].as_array().unwrap().len(), 2);
}

/// Two participants over WebSocket and one over native gRPC share a room and see every message
/// in the same order; a late joiner gets the history; a wrong room is refused with 1011.
#[tokio::test]
async fn chat_room_over_websocket_and_grpc() {
    let sys = System::start().await;
    let topic = "chat.room-1";
    let mut a = ws_connect(&sys, "/api/v1/chat/room-1").await;
    let mut b = ws_connect(&sys, "/api/v1/chat/room-1").await;
    // An empty message joins without being broadcast.
    ws_send(&mut a, json!({"userId": "a"})).await;
    ws_send(&mut b, json!({"userId": "b"})).await;
    let (c_tx, c_rx) = tokio::sync::mpsc::channel(8);
    c_tx.send(ChatMessage { session_id: "room-1".into(), user_id: "c".into(), ..Default::default() }).await.unwrap();
    let mut chat = ChatServiceClient::new(sys.channel().await);
    let mut c = chat.chat(tokio_stream::wrappers::ReceiverStream::new(c_rx)).await.unwrap().into_inner();
    eventually("three participants joined", || sys.subscribers(topic) == 3).await;

    // Each message is sent once the previous one has gone round, so the order is known.
    let mut seen_c = Vec::new();
    let mut c_next = async || {
        let m = c.message().await.unwrap().unwrap();
        json!({"message": m.message, "id": m.id.to_string(), "timestamp": m.timestamp.to_string()})
    };
    ws_send(&mut a, json!({"userId": "a", "message": "hello from a"})).await;
    seen_c.push(c_next().await);
    ws_send(&mut b, json!({"sessionId": "room-1", "userId": "b", "message": "hi from b"})).await;
    seen_c.push(c_next().await);
    c_tx.send(ChatMessage { user_id: "c".into(), message: "hey from c".into(), ..Default::default() }).await.unwrap();
    seen_c.push(c_next().await);
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..3 {
        seen_a.push(ws_next(&mut a).await);
        seen_b.push(ws_next(&mut b).await);
    }
    let want = ["hello from a", "hi from b", "hey from c"];
    for seen in [&seen_a, &seen_b, &seen_c] {
        let texts: Vec<&str> = seen.iter().map(|m| m["message"].as_str().unwrap()).collect();
        assert_eq!(texts, want);
        let ids: Vec<i64> = seen.iter().map(|m| m["id"].as_str().unwrap().parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(seen.iter().all(|m| m["timestamp"].as_str().unwrap().parse::<i64>().unwrap() > 1_600_000_000_000));
    }
    assert_eq!(seen_a, seen_b);

    let mut late = ws_connect(&sys, "/api/v1/chat/room-1").await;
    ws_send(&mut late, json!({})).await;
    let history: Vec<Value> = vec![ws_next(&mut late).await, ws_next(&mut late).await, ws_next(&mut late).await];
    assert_eq!(history.iter().map(|m| m["message"].as_str().unwrap()).collect::<Vec<_>>(), want);

    let mut wrong = ws_connect(&sys, "/api/v1/chat/room-1").await;
    ws_send(&mut wrong, json!({"sessionId": "room-2", "message": "x"})).await;
    let err = ws_next(&mut wrong).await;
    assert_eq!(err["error"]["code"], 3, "{err}");
    match wrong.next().await.unwrap().unwrap() {
        Ws::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected close 1011, got {other:?}"),
    }

    // Leaving frees the subscription.
    a.close(None).await.unwrap();
    drop(a);
    eventually("a left the room", || sys.subscribers(topic) == 3).await;
    // A plain GET without the upgrade is a client error.
    assert_status(&send(http().get(sys.url("/api/v1/chat/room-1"))).await, 400, 3);
}

/// Monitor streams the backend's real, changing figures once a second and switches service on
/// request; an unknown service ends the socket with 1011.
#[tokio::test]
async fn monitor_reports_real_figures() {
    let sys = System::start().await;
    let mut ws = ws_connect(&sys, "/api/v1/monitor").await;
    ws_send(&mut ws, json!({"serviceId": "backend"})).await;
    let first = ws_next(&mut ws).await;
    assert_eq!(first["serviceId"], "backend");
    assert!(first["memoryUsage"].as_f64().unwrap() > 1_000_000.0, "{first}");
    let before: i64 = first["requestCount"].as_str().unwrap().parse().unwrap();
    for i in 0..5 {
        new_user(&sys, &format!("m{i}@example.com")).await;
    }
    let second = ws_next(&mut ws).await;
    let after: i64 = second["requestCount"].as_str().unwrap().parse().unwrap();
    assert!(after >= before + 5, "{before} -> {after}");
    assert!(second["cpuUsage"].as_f64().unwrap() >= 0.0);

    ws_send(&mut ws, json!({"serviceId": "user.v1.UserService", "metric": "METRIC_TYPE_REQUESTS"})).await;
    let switched = ws_next(&mut ws).await;
    assert_eq!(switched["serviceId"], "user.v1.UserService");
    assert!(switched["requestCount"].as_str().unwrap().parse::<i64>().unwrap() >= 5);
    assert_eq!(switched["memoryUsage"], 0.0);

    ws_send(&mut ws, json!({"serviceId": "nope.Service"})).await;
    let err = ws_next(&mut ws).await;
    assert_eq!(err["error"]["code"], 3);
}

/// Shutting the backend down ends live streams cleanly (the watch's HTTP response completes)
/// instead of waiting on them forever.
#[tokio::test]
async fn shutdown_ends_live_streams() {
    let mut sys = System::start().await;
    let user = new_user(&sys, "leaving@example.com").await;
    let watch = http().get(sys.url(&format!("/api/v1/orders:watch?userId={user}"))).send().await.unwrap();
    assert_eq!(watch.status(), 200);
    eventually("the watcher is subscribed", || sys.subscribers(&format!("orders.user.{user}")) == 1).await;
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), sys.stop_backend()).await;
    assert!(stopped.is_ok(), "the backend did not stop within 5 s with a watch open");
    let rest = tokio::time::timeout(std::time::Duration::from_secs(5), watch.text()).await;
    assert!(rest.is_ok(), "the watch response did not end");
}

/// CreateOrder validates its items and computes the total; UpdateOrderStatus only moves one step
/// forward; both over native gRPC, as the REST tests do through the gateway.
#[tokio::test]
async fn order_rules_over_grpc() {
    use switchyard_proto::order::v1::{CreateOrderRequest, OrderItem, UpdateOrderStatusRequest};
    let sys = System::start().await;
    let user = new_user(&sys, "rules@example.com").await;
    let mut client = OrderServiceClient::new(sys.channel().await);
    let item = |q: i32, p: f64| OrderItem { product_id: "p".into(), name: "P".into(), quantity: q, price: p };
    let order = client
        .create_order(CreateOrderRequest { user_id: user.clone(), items: vec![item(2, 1.25), item(1, 3.0)] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((order.total, order.status()), (5.5, OrderStatus::Pending));
    for (items, what) in
        [(vec![], "no items"), (vec![item(0, 1.0)], "zero quantity"), (vec![item(1, -1.0)], "negative price")]
    {
        let err = client.create_order(CreateOrderRequest { user_id: user.clone(), items }).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}");
    }
    let err = client
        .create_order(CreateOrderRequest { user_id: "ghost".into(), items: vec![item(1, 1.0)] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let to = |status: OrderStatus| UpdateOrderStatusRequest { order_id: order.order_id.clone(), status: status as i32 };
    assert_eq!(
        client.update_order_status(to(OrderStatus::Shipped)).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );
    for s in [OrderStatus::Paid, OrderStatus::Shipped, OrderStatus::Delivered] {
        assert_eq!(client.update_order_status(to(s)).await.unwrap().into_inner().status(), s);
    }
    assert_eq!(
        client.update_order_status(to(OrderStatus::Pending)).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );
    assert_eq!(
        client.update_order_status(to(OrderStatus::Unspecified)).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}
