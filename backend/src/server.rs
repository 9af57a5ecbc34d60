//! Puts the services, health checking and server reflection on one tonic server.

use crate::config::Config;
use crate::events::EventBus;
use crate::metrics::{CountLayer, RequestCounts};
use crate::services::{chat::ChatApi, order::OrderApi, types::TypesApi, upload::UploadApi, user::UserApi};
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;
use switchyard_proto::chat::v1::chat_service_server::ChatServiceServer;
use switchyard_proto::order::v1::order_service_server::OrderServiceServer;
use switchyard_proto::types::v1::types_service_server::TypesServiceServer;
use switchyard_proto::upload::v1::upload_service_server::UploadServiceServer;
use switchyard_proto::user::v1::user_service_server::UserServiceServer;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;

/// The request header list size the backend advertises and accepts.
pub const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Messages each live subscriber (order watcher, chat participant) may fall behind by.
pub const BUS_CAPACITY: usize = 1024;

/// The services this backend serves, by full name (for request counts).
pub const SERVICES: &[&str] = &[
    "user.v1.UserService",
    "order.v1.OrderService",
    "upload.v1.UploadService",
    "chat.v1.ChatService",
    "types.v1.TypesService",
];

/// A backend with its store opened, ready to serve.
pub struct Backend {
    store: Arc<dyn Store>,
    /// TLS for the gRPC port, when configured.
    tls: Option<Arc<switchyard_common::tls::ServerTls>>,
    /// Who may call what, when authentication is configured.
    auth: Option<Arc<crate::auth::Authenticator>>,
    bus: Arc<dyn EventBus>,
    counts: Arc<RequestCounts>,
    config: Config,
}

impl Backend {
    /// Opens the database named by the config (running migrations).
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let (store, bus) = crate::store::open_with_bus(&config.database, BUS_CAPACITY).await?;
        let auth = crate::auth::Authenticator::load(&config.auth)?.map(Arc::new);
        if auth.is_none() {
            tracing::warn!("no authentication configured (--auth-tokens, --jwt-…): every caller may call every method");
        }
        let tls = match &config.tls {
            Some(files) => {
                Some(switchyard_common::tls::ServerTls::load(files.clone(), switchyard_common::tls::ALPN_H2)?)
            }
            None => None,
        };
        Ok(Backend {
            tls,
            auth,
            store,
            bus,
            counts: Arc::new(RequestCounts::new(SERVICES.iter().copied())),
            config: config.clone(),
        })
    }

    /// The event bus, to observe live subscribers (tests, monitoring).
    pub fn bus(&self) -> Arc<dyn EventBus> {
        self.bus.clone()
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then drains in-flight calls.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<UserServiceServer<UserApi>>().await;
        health.set_serving::<OrderServiceServer<OrderApi>>().await;
        health.set_serving::<UploadServiceServer<UploadApi>>().await;
        health.set_serving::<ChatServiceServer<ChatApi>>().await;
        health.set_serving::<TypesServiceServer<TypesApi>>().await;
        // Every served service is listed, health and reflection included.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(switchyard_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1()?;
        // grpcurl 1.8 and other older clients only speak v1alpha.
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let bus: Arc<dyn EventBus> = self.bus.clone();
        let send = match self.config.compression.as_deref() {
            Some("gzip") => Some(CompressionEncoding::Gzip),
            Some("zstd") => Some(CompressionEncoding::Zstd),
            _ => None,
        };
        // Every service accepts compressed requests, and compresses answers when configured and
        // the client accepts it.
        macro_rules! compressed {
            ($server:expr) => {{
                let s =
                    $server.accept_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Zstd);
                match send {
                    Some(c) => s.send_compressed(c),
                    None => s,
                }
            }};
        }
        let uploads = UploadApi::new(self.store.clone(), self.config.upload_dir.clone(), self.config.max_upload_size)?;
        if let Some(tls) = &self.tls {
            switchyard_common::tls::reload_on_sighup("backend", tls.clone());
        }
        let incoming = crate::tls::incoming(listener, self.tls.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let serving = Server::builder()
            // Room for what gateways forward (their own limit is 16 KiB by default) plus gRPC's
            // own headers; hyper's default is 16 KiB.
            .http2_max_header_list_size(MAX_HEADER_LIST)
            // Logs every call at debug level (RUST_LOG=debug), with the request id the gateway
            // forwards, so gateway and backend logs join up.
            .layer(
                tower_http::trace::TraceLayer::new_for_grpc().make_span_with(call_span as fn(&http::Request<_>) -> _),
            )
            // Counts every call, for Monitor.
            .layer(CountLayer(self.counts.clone()))
            // Who may call what: UNAUTHENTICATED / PERMISSION_DENIED before any service runs.
            .layer(tower::util::option_layer(self.auth.clone().map(crate::auth::AuthLayer)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(compressed!(UserServiceServer::new(UserApi::new(self.store.clone()))))
            .add_service(compressed!(OrderServiceServer::new(OrderApi::new(self.store.clone(), bus.clone()))))
            .add_service(compressed!(UploadServiceServer::new(uploads)))
            .add_service(compressed!(ChatServiceServer::new(ChatApi::new(
                self.store.clone(),
                bus,
                self.counts.clone()
            ))))
            .add_service(compressed!(TypesServiceServer::new(TypesApi)))
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
        tokio::pin!(serving);
        tokio::select! {
            r = &mut serving => return Ok(r?),
            () = shutdown => {}
        }
        // Draining: new calls are refused; live streams (watchers, chat rooms) end cleanly when
        // the bus closes; whatever still runs after the grace period is cut off.
        stop.cancel();
        self.bus.close();
        match switchyard_common::shutdown::drain("backend", serving).await {
            Some(r) => Ok(r?),
            None => Ok(()),
        }
    }
}

fn call_span<B>(req: &http::Request<B>) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::debug_span!("call", method = %req.uri().path(), request_id = %id)
}

/// Opens the store and serves on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    Backend::open(config).await?.serve(listener, shutdown).await
}
