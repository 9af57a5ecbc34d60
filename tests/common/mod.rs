//! A real backend and a real gateway on ephemeral loopback ports, with a fresh SQLite file and
//! upload folder.
#![allow(dead_code)]

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub struct System {
    /// The gRPC backend's address.
    pub grpc: SocketAddr,
    /// The gateway's base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The backend's event bus, to watch live subscribers.
    pub bus: Option<Arc<dyn backend::events::EventBus>>,
    /// The backend's settings (database and upload folder live in `dir`).
    pub backend_config: backend::Config,
    backend_stop: CancellationToken,
    backend_task: Option<JoinHandle<anyhow::Result<()>>>,
    gateway_stop: CancellationToken,
    pub dir: tempfile::TempDir,
}

impl System {
    /// Starts backend and gateway.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts backend and gateway, letting the caller adjust the backend's settings.
    pub async fn start_with(adjust: impl FnOnce(&mut backend::Config)) -> Self {
        Self::start_configured(adjust, |_| {}).await
    }

    /// Starts backend and gateway, letting the caller adjust the gateway's settings.
    pub async fn start_gateway_with(adjust: impl FnOnce(&mut gateway::Config)) -> Self {
        Self::start_configured(|_| {}, adjust).await
    }

    /// Starts backend and gateway with adjusted settings.
    pub async fn start_configured(
        adjust: impl FnOnce(&mut backend::Config),
        adjust_gateway: impl FnOnce(&mut gateway::Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = grpc_listener.local_addr().unwrap();
        let mut backend_config = backend::Config::in_dir(dir.path());
        adjust(&mut backend_config);
        let mut sys = System {
            grpc,
            base: String::new(),
            bus: None,
            backend_config,
            backend_stop: CancellationToken::new(),
            backend_task: None,
            gateway_stop: CancellationToken::new(),
            dir,
        };
        sys.spawn_backend(grpc_listener).await;
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if sys.backend_config.tls.is_some() { "https" } else { "http" };
        let mut config = gateway::Config::for_backend(format!("{scheme}://{grpc}"));
        adjust_gateway(&mut config);
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        sys.base = format!("{scheme}://{}", http_listener.local_addr().unwrap());
        let stop = sys.gateway_stop.clone();
        tokio::spawn(async move { gateway::run(http_listener, &config, stop.cancelled_owned()).await });
        sys
    }

    async fn spawn_backend(&mut self, listener: TcpListener) {
        let backend = backend::Backend::open(&self.backend_config).await.unwrap();
        self.bus = Some(backend.bus());
        self.backend_stop = CancellationToken::new();
        let stop = self.backend_stop.clone();
        self.backend_task = Some(tokio::spawn(backend.serve(listener, stop.cancelled_owned())));
    }

    /// Stops the backend and waits until its port is closed.
    pub async fn stop_backend(&mut self) {
        self.backend_stop.cancel();
        if let Some(task) = self.backend_task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Starts the backend again on the same address and database file.
    pub async fn restart_backend(&mut self) {
        let listener = TcpListener::bind(self.grpc).await.unwrap();
        self.spawn_backend(listener).await;
    }

    /// A channel to the backend for native gRPC clients.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc)).unwrap().connect().await.unwrap()
    }

    /// A native gRPC client of the User API.
    pub async fn user_client(&self) -> switchyard_proto::user::v1::user_service_client::UserServiceClient<Channel> {
        switchyard_proto::user::v1::user_service_client::UserServiceClient::new(self.channel().await)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The number of live subscribers of a bus topic.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.bus.as_ref().unwrap().subscribers(topic)
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.backend_stop.cancel();
        self.gateway_stop.cancel();
    }
}

/// An HTTP/1.1 client.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// Sends a request and returns the status and the JSON body.
pub async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, json)
}

/// Asserts a google.rpc.Status body with this code and HTTP status.
pub fn assert_status(got: &(u16, serde_json::Value), http: u16, code: i64) {
    assert_eq!(got.0, http, "HTTP status of {}", got.1);
    assert_eq!(got.1["code"], code, "code in {}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {}", got.1);
    assert!(got.1["details"].is_array(), "details in {}", got.1);
}

/// Waits (bounded) until `check` holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

pub async fn new_user(sys: &System, email: &str) -> String {
    let (status, u) =
        send(http().post(sys.url("/api/v1/users")).json(&json!({"name": "Buyer", "email": email, "age": 30}))).await;
    assert_eq!(status, 200, "{u}");
    u["id"].as_str().unwrap().to_owned()
}

pub async fn new_order(sys: &System, user: &str, quantity: i32) -> Value {
    let (status, o) = send(http().post(sys.url("/api/v1/orders")).json(&json!({
        "userId": user, "items": [{"productId": "p1", "name": "Widget", "quantity": quantity, "price": 2.5}]
    })))
    .await;
    assert_eq!(status, 200, "{o}");
    o
}

/// Reads a streaming HTTP body line by line as it arrives.
pub struct Lines {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl Lines {
    pub fn new(resp: reqwest::Response) -> Self {
        Lines { body: resp.bytes_stream().boxed(), buf: Vec::new() }
    }

    /// The next non-empty line, or None at the end of the body.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8(line).unwrap().trim().to_owned();
                if !line.is_empty() {
                    return Some(line);
                }
                continue;
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk.unwrap()),
                None => return None,
            }
        }
    }
}

pub type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(sys: &System, path: &str) -> WsStream {
    let url = format!("{}{path}", sys.base.replacen("http://", "ws://", 1));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

pub async fn ws_send(ws: &mut WsStream, v: Value) {
    ws.send(Ws::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON text frame.
pub async fn ws_next(ws: &mut WsStream) -> Value {
    loop {
        match ws.next().await.expect("socket open").unwrap() {
            Ws::Text(t) => return serde_json::from_str(&t).unwrap(),
            Ws::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// The database the PostgreSQL tests may create schemas in (`SWITCHYARD_TEST_POSTGRES_URL`), or
/// `None` after saying that `test` is skipped — straight to stderr, which the test harness does
/// not swallow as it does `eprintln!` of a passing test.
pub fn postgres_url(test: &str) -> Option<String> {
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: SWITCHYARD_TEST_POSTGRES_URL unset");
    }
    url
}
