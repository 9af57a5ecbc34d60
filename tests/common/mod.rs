//! A real backend and a real gateway on ephemeral loopback ports, with a fresh SQLite file.
#![allow(dead_code)]

use std::net::SocketAddr;
use switchyard_proto::user::v1::user_service_client::UserServiceClient;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub struct System {
    /// The gRPC backend's address.
    pub grpc: SocketAddr,
    /// The gateway's base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The SQLite URL the backend uses (kept across restarts).
    pub database: String,
    backend_stop: CancellationToken,
    backend_task: Option<JoinHandle<anyhow::Result<()>>>,
    gateway_stop: CancellationToken,
    /// The backend's event bus, to watch live subscribers.
    pub bus: Option<std::sync::Arc<dyn backend::events::EventBus>>,
    pub _dir: tempfile::TempDir,
}

impl System {
    /// Starts backend and gateway.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("switchyard.db").display());
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = grpc_listener.local_addr().unwrap();
        let mut sys = System {
            grpc,
            base: String::new(),
            database,
            backend_stop: CancellationToken::new(),
            backend_task: None,
            gateway_stop: CancellationToken::new(),
            bus: None,
            _dir: dir,
        };
        sys.spawn_backend(grpc_listener).await;
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        sys.base = format!("http://{}", http_listener.local_addr().unwrap());
        let config = gateway::Config::for_backend(format!("http://{grpc}"));
        let stop = sys.gateway_stop.clone();
        tokio::spawn(
            async move { gateway::run(http_listener, &config, stop.cancelled_owned()).await },
        );
        sys
    }

    async fn spawn_backend(&mut self, listener: TcpListener) {
        let config = backend::Config {
            listen: self.grpc,
            database: self.database.clone(),
        };
        let backend = backend::Backend::open(&config).await.unwrap();
        self.backend_stop = CancellationToken::new();
        let stop = self.backend_stop.clone();
        self.backend_task = Some(tokio::spawn(
            backend.serve(listener, stop.cancelled_owned()),
        ));
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

    /// A native gRPC client of the backend.
    pub async fn user_client(&self) -> UserServiceClient<Channel> {
        UserServiceClient::connect(format!("http://{}", self.grpc))
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {}",
        got.1
    );
    assert!(got.1["details"].is_array(), "details in {}", got.1);
}
