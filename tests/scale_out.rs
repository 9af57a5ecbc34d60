//! Two backend instances on one PostgreSQL behind one gateway: live streams cross instances
//! (an order watcher on one hears a change made through the other; a chat room with a
//! participant on each sees every message once, in one order), and killing one instance ends
//! only its own streams while new calls go to the other.
//!
//! Needs `SWITCHYARD_TEST_POSTGRES_URL` (`.ci/run` starts a PostgreSQL and sets it); without it
//! the test says it skipped.

mod common;

use common::{eventually, http, send};
use serde_json::json;
use std::time::Duration;
use switchyard_proto::chat::v1::ChatMessage;
use switchyard_proto::chat::v1::chat_service_client::ChatServiceClient;
use switchyard_proto::order::v1::order_service_client::OrderServiceClient;
use switchyard_proto::order::v1::{
    CreateOrderRequest, OrderItem, OrderStatus, StreamRequest, UpdateOrderStatusRequest,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

struct Instance {
    addr: std::net::SocketAddr,
    bus: std::sync::Arc<dyn backend::events::EventBus>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn instance(config: &backend::Config) -> Instance {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = backend::Backend::open(config).await.unwrap();
    let bus = backend.bus();
    let stop = CancellationToken::new();
    let task = tokio::spawn(backend.serve(listener, stop.clone().cancelled_owned()));
    Instance { addr, bus, stop, task }
}

async fn channel(i: &Instance) -> Channel {
    Channel::from_shared(format!("http://{}", i.addr)).unwrap().connect().await.unwrap()
}

/// A message from `user` to the test's room; an empty text only joins.
fn chat_line(user: &str, text: &str) -> ChatMessage {
    ChatMessage { session_id: "scale".into(), user_id: user.into(), message: text.into(), timestamp: 0, id: 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres() {
    let Some(base_url) = common::postgres_url("two_instances_on_one_postgres") else { return };
    let schema = backend::store::PostgresSchema::create(&base_url, "scale").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = backend::Config::in_dir(dir.path());
    config.database = schema.url.clone();
    let a = instance(&config).await;
    let b = instance(&config).await;

    let mut gw = gateway::Config::for_backend(format!("http://{}", a.addr));
    gw.api.backends.push(format!("http://{}", b.addr).parse().unwrap());
    gw.health_check_interval = Duration::from_millis(100);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway::run(listener, &gw, std::future::pending()).await });

    // Users made through the gateway land on either instance; both read them.
    let (status, user) =
        send(http().post(format!("{base}/api/v1/users")).json(&json!({"name": "S", "email": "s@example.com"}))).await;
    assert_eq!(status, 200, "{user}");
    let user_id = user["id"].as_str().unwrap().to_owned();

    // An order watcher on A hears a change made through B.
    let mut on_a = OrderServiceClient::new(channel(&a).await);
    let mut on_b = OrderServiceClient::new(channel(&b).await);
    let item = OrderItem { product_id: "p".into(), name: "P".into(), quantity: 1, price: 2.0 };
    let order = on_b.create_order(CreateOrderRequest { user_id: user_id.clone(), items: vec![item] }).await.unwrap();
    let order_id = order.into_inner().order_id;
    let mut watch = on_a
        .stream_order_updates(StreamRequest { user_id: String::new(), order_id: order_id.clone() })
        .await
        .unwrap()
        .into_inner();
    let topic = format!("orders.order.{order_id}");
    eventually("the watch is subscribed on A", || a.bus.subscribers(&topic) == 1).await;
    on_b.update_order_status(UpdateOrderStatusRequest { order_id: order_id.clone(), status: OrderStatus::Paid as i32 })
        .await
        .unwrap();
    // The change made through B after the watch subscribed reaches it. The order's creation,
    // published by B just before, reaches A's bus whenever NOTIFY delivers it: before the watch
    // subscribed (not seen) or after (seen first, as Pending) — both are right.
    let mut update = None;
    for _ in 0..2 {
        let u = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
        if u.status() != OrderStatus::Pending {
            update = Some(u);
            break;
        }
    }
    let update = update.expect("the change after the creation");
    assert_eq!((update.order_id.as_str(), update.status()), (order_id.as_str(), OrderStatus::Paid));

    // A chat room with one participant on each instance: every message once, one order.
    let (tx_a, rx_a) = tokio::sync::mpsc::channel(16);
    let (tx_b, rx_b) = tokio::sync::mpsc::channel(16);
    let mut chat_a = ChatServiceClient::new(channel(&a).await)
        .chat(tokio_stream::wrappers::ReceiverStream::new(rx_a))
        .await
        .unwrap()
        .into_inner();
    let mut chat_b = ChatServiceClient::new(channel(&b).await)
        .chat(tokio_stream::wrappers::ReceiverStream::new(rx_b))
        .await
        .unwrap()
        .into_inner();
    tx_a.send(chat_line("a", "")).await.unwrap();
    tx_b.send(chat_line("b", "")).await.unwrap();
    eventually("both participants joined", || {
        a.bus.subscribers("chat.scale") == 1 && b.bus.subscribers("chat.scale") == 1
    })
    .await;
    // Both post at once, several times: the orders must agree, whatever they are.
    for n in 0..5 {
        tx_a.send(chat_line("a", &format!("a{n}"))).await.unwrap();
        tx_b.send(chat_line("b", &format!("b{n}"))).await.unwrap();
    }
    let read = async |s: &mut tonic::Streaming<ChatMessage>| {
        let mut got = Vec::new();
        while got.len() < 10 {
            let m = tokio::time::timeout(Duration::from_secs(10), s.message()).await.unwrap().unwrap().unwrap();
            if !m.message.is_empty() {
                got.push((m.id, m.message));
            }
        }
        got
    };
    let seen_a = read(&mut chat_a).await;
    let seen_b = read(&mut chat_b).await;
    assert_eq!(seen_a, seen_b, "one order on both instances");
    let ids: Vec<i64> = seen_a.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>(), "the room's positions, in order: {seen_a:?}");
    let mut texts: Vec<&str> = seen_a.iter().map(|(_, t)| t.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), 10, "every message once: {seen_a:?}");
    // A late joiner on either instance gets the same history.
    for late in [&a, &b] {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(chat_line("late", "")).await.unwrap();
        let mut s = ChatServiceClient::new(channel(late).await)
            .chat(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        drop(tx);
        let mut history = Vec::new();
        while let Some(m) = tokio::time::timeout(Duration::from_secs(10), s.message()).await.unwrap().unwrap() {
            history.push((m.id, m.message));
        }
        assert_eq!(history, seen_a, "the history is the live order");
    }

    // A message too big for a notification (4,000 three-byte characters, within the chat's
    // character limit) travels by id through the database.
    let big = "✓".repeat(4_000);
    tx_a.send(chat_line("a", &big)).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), chat_b.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.message.len(), big.len());

    // A goes away mid-stream: its streams end, B's go on, and new calls go to B.
    a.stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), a.task).await;
    let ended = tokio::time::timeout(Duration::from_secs(15), watch.message()).await.unwrap();
    assert!(!matches!(ended, Ok(Some(_))), "A's watch ended: {ended:?}");
    tx_b.send(chat_line("b", "after")).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), chat_b.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.message, "after");
    for n in 0..4 {
        let (status, body) = send(http().get(format!("{base}/api/v1/users/{user_id}"))).await;
        assert_eq!(status, 200, "call {n} after A stopped: {body}");
    }
    b.stop.cancel();
    let _ = b.task.await;
    schema.drop_schema().await.unwrap();
}
