//! What is measured: the scenarios, the paths they run over, and one request of each.

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard_proto::order::v1::GetOrdersRequest;
use switchyard_proto::order::v1::order_service_client::OrderServiceClient;
use switchyard_proto::upload::v1::Chunk;
use switchyard_proto::upload::v1::upload_service_client::UploadServiceClient;
use switchyard_proto::user::v1::user_service_client::UserServiceClient;
use switchyard_proto::user::v1::{CreateUserRequest, GetUserRequest, ListUsersRequest};
use tonic::transport::Channel;

/// A benchmarked call.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Unary GetUser of a random seeded user.
    GetUser,
    /// Unary CreateUser with a unique email.
    CreateUser,
    /// Unary ListUsers, one page of 50.
    ListUsers,
    /// Server-streaming GetOrders of a user with many orders.
    GetOrders,
    /// Client-streaming upload of a file.
    Upload,
}

impl Scenario {
    pub const ALL: [Scenario; 5] =
        [Scenario::GetUser, Scenario::CreateUser, Scenario::ListUsers, Scenario::GetOrders, Scenario::Upload];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::GetUser => "get-user",
            Scenario::CreateUser => "create-user",
            Scenario::ListUsers => "list-users",
            Scenario::GetOrders => "get-orders",
            Scenario::Upload => "upload",
        }
    }
}

/// A way to reach the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// A tonic client straight to the backend (one HTTP/2 connection).
    Grpc,
    /// REST through the gateway, HTTP/1.1 keep-alive (one connection per worker).
    GatewayH1,
    /// REST through the gateway, HTTP/2 (one multiplexed connection).
    GatewayH2,
    /// REST through a second gateway that writes no access log (`--access-log off`), HTTP/1.1:
    /// against `GatewayH1`, what the log costs.
    GatewayH1NoAccessLog,
    /// The legacy REST service, HTTP/1.1 keep-alive, no gRPC behind it.
    LegacyRest,
    /// The legacy REST service through a migration-mode gateway whose plan keeps every route
    /// on it (passthrough).
    LegacyPassthrough,
    /// The same with the read routes shadowed: legacy answers, gRPC compared in the background.
    LegacyShadowed,
    /// Another gateway (`--peer NAME=COMMAND`) in front of the same backend, HTTP/1.1
    /// keep-alive; GetUser only, the one route every REST-to-gRPC gateway can be set up for.
    Peer(&'static str),
}

impl Serialize for PathKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl PathKind {
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Grpc => "grpc",
            PathKind::GatewayH1 => "gateway-h1",
            PathKind::GatewayH2 => "gateway-h2",
            PathKind::GatewayH1NoAccessLog => "gateway-h1-no-access-log",
            PathKind::LegacyRest => "legacy-rest",
            PathKind::LegacyPassthrough => "legacy-passthrough",
            PathKind::LegacyShadowed => "legacy-shadowed",
            PathKind::Peer(name) => name,
        }
    }
}

/// Data every request draws on, made before measuring.
pub struct Fixture {
    /// Ids of seeded users, for GetUser.
    pub user_ids: Vec<String>,
    /// The user whose orders GetOrders streams.
    pub orders_user: String,
    /// The file every upload sends.
    pub upload: Bytes,
    /// Unique per run, so creates never collide with earlier runs on the same database.
    pub run_id: String,
    /// Next email number for CreateUser.
    pub counter: AtomicU64,
}

/// The result of one request.
pub struct Outcome {
    /// "OK" or the HTTP status / gRPC code that came back, or a transport error.
    pub status: String,
    pub latency: Duration,
    /// Streams: time to the first message.
    pub ttfm: Option<Duration>,
    /// Streams: messages received; uploads: bytes sent.
    pub units: u64,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status == "OK"
    }
}

/// Small deterministic generator (xorshift64*), so runs with one seed pick the same users.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

pub enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One worker's connection to one path.
pub enum Client {
    Grpc(Channel),
    Http { sender: Sender, authority: String },
}

/// Opens an HTTP/1.1 connection.
pub async fn http1(authority: &str) -> anyhow::Result<Client> {
    let tcp = tokio::net::TcpStream::connect(authority).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(Client::Http { sender: Sender::H1(sender), authority: authority.to_owned() })
}

/// Opens an HTTP/2 (prior knowledge) connection; clone the client to share it.
pub async fn http2(authority: &str) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(authority).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .handshake(TokioIo::new(tcp))
        .await?;
    tokio::spawn(conn);
    Ok(sender)
}

impl Client {
    pub fn h2(sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>, authority: &str) -> Self {
        Client::Http { sender: Sender::H2(sender), authority: authority.to_owned() }
    }

    /// Sends one request and reads the whole response, reporting the time to the first line.
    async fn http(&mut self, method: Method, path: &str, body: Bytes, ctype: &str) -> (String, Option<Duration>, u64) {
        let Client::Http { sender, authority } = self else { unreachable!("HTTP request on a gRPC client") };
        let start = Instant::now();
        let builder = Request::builder().method(method).header(header::CONTENT_TYPE, ctype);
        let req = match sender {
            Sender::H1(_) => builder.uri(path).header(header::HOST, authority.as_str()),
            Sender::H2(_) => builder.uri(format!("http://{authority}{path}")),
        }
        .body(Full::new(body))
        .expect("valid request");
        let resp = match sender {
            Sender::H1(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
            Sender::H2(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return (format!("transport: {e}"), None, 0),
        };
        let status = resp.status();
        let mut body = resp.into_body();
        let mut ttfm = None;
        let mut lines = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(data) = f.data_ref() {
                        let n = data.iter().filter(|b| **b == b'\n').count() as u64;
                        if n > 0 && ttfm.is_none() {
                            ttfm = Some(start.elapsed());
                        }
                        lines += n;
                    }
                }
                Err(e) => return (format!("transport: {e}"), ttfm, lines),
            }
        }
        let status = if status.is_success() { "OK".to_owned() } else { status.as_str().to_owned() };
        (status, ttfm, lines)
    }

    /// One request of `scenario`.
    pub async fn call(&mut self, scenario: Scenario, fx: &Arc<Fixture>, rng: &mut Rng) -> Outcome {
        let start = Instant::now();
        let (status, ttfm, units) = match (self, scenario) {
            (Client::Grpc(ch), s) => grpc_call(ch.clone(), s, fx, rng).await,
            (http, Scenario::GetUser) => {
                let id = &fx.user_ids[rng.below(fx.user_ids.len())];
                http.http(Method::GET, &format!("/api/v1/users/{id}"), Bytes::new(), "application/json").await
            }
            (http, Scenario::CreateUser) => {
                let body = serde_json::json!({"name": "Bench User", "email": next_email(fx), "age": 30});
                http.http(Method::POST, "/api/v1/users", Bytes::from(body.to_string()), "application/json").await
            }
            (http, Scenario::ListUsers) => {
                http.http(Method::GET, "/api/v1/users?pageSize=50", Bytes::new(), "application/json").await
            }
            (http, Scenario::GetOrders) => {
                let path = format!("/api/v1/users/{}/orders", fx.orders_user);
                http.http(Method::GET, &path, Bytes::new(), "application/json").await
            }
            (http, Scenario::Upload) => {
                let (status, _, _) =
                    http.http(Method::POST, "/api/v1/uploads", fx.upload.clone(), "application/octet-stream").await;
                (status, None, fx.upload.len() as u64)
            }
        };
        Outcome { status, latency: start.elapsed(), ttfm, units }
    }
}

fn next_email(fx: &Fixture) -> String {
    format!("bench-{}-{}@example.com", fx.run_id, fx.counter.fetch_add(1, Ordering::Relaxed))
}

fn code(s: &tonic::Status) -> String {
    format!("{:?}", s.code())
}

/// The chunk size of gRPC uploads.
pub const GRPC_CHUNK: usize = 64 * 1024;

async fn grpc_call(
    ch: Channel,
    scenario: Scenario,
    fx: &Arc<Fixture>,
    rng: &mut Rng,
) -> (String, Option<Duration>, u64) {
    let start = Instant::now();
    match scenario {
        Scenario::GetUser => {
            let id = fx.user_ids[rng.below(fx.user_ids.len())].clone();
            match UserServiceClient::new(ch).get_user(GetUserRequest { user_id: id }).await {
                Ok(_) => ("OK".into(), None, 0),
                Err(s) => (code(&s), None, 0),
            }
        }
        Scenario::CreateUser => {
            let req = CreateUserRequest { name: "Bench User".into(), email: next_email(fx), age: 30 };
            match UserServiceClient::new(ch).create_user(req).await {
                Ok(_) => ("OK".into(), None, 0),
                Err(s) => (code(&s), None, 0),
            }
        }
        Scenario::ListUsers => {
            match UserServiceClient::new(ch)
                .list_users(ListUsersRequest { page_size: 50, page_token: String::new() })
                .await
            {
                Ok(_) => ("OK".into(), None, 0),
                Err(s) => (code(&s), None, 0),
            }
        }
        Scenario::GetOrders => {
            let req = GetOrdersRequest { user_id: fx.orders_user.clone(), limit: 0 };
            let mut stream = match OrderServiceClient::new(ch).get_orders(req).await {
                Ok(r) => r.into_inner(),
                Err(s) => return (code(&s), None, 0),
            };
            let mut ttfm = None;
            let mut n = 0;
            loop {
                match stream.message().await {
                    Ok(Some(_)) => {
                        ttfm.get_or_insert_with(|| start.elapsed());
                        n += 1;
                    }
                    Ok(None) => return ("OK".into(), ttfm, n),
                    Err(s) => return (code(&s), ttfm, n),
                }
            }
        }
        Scenario::Upload => {
            let data = fx.upload.clone();
            let chunks = (0..data.len().div_ceil(GRPC_CHUNK)).map(move |i| Chunk {
                upload_id: String::new(),
                sequence: i as i32,
                data: data[i * GRPC_CHUNK..((i + 1) * GRPC_CHUNK).min(data.len())].to_vec(),
            });
            match UploadServiceClient::new(ch).upload_chunks(futures::stream::iter(chunks)).await {
                Ok(_) => ("OK".into(), None, fx.upload.len() as u64),
                Err(s) => (code(&s), None, 0),
            }
        }
    }
}
