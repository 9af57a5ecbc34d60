//! Serves a [`Gateway`] over HTTP/1.1 and h2c on one listener.

use crate::config::Config;
use crate::error::GatewayError;
use crate::openapi::ApiInfo;
use crate::transcode::Gateway;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost_reflect::DescriptorPool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The gateway for the compiled-in protos, talking to `config.backend`.
pub fn gateway(config: &Config) -> anyhow::Result<Gateway> {
    gateway_for(DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET)?, config)
}

/// The gateway for the services of `pool`, talking to `config.backend`.
pub fn gateway_for(pool: DescriptorPool, config: &Config) -> anyhow::Result<Gateway> {
    let timeout = Some(config.timeout).filter(|t| !t.is_zero());
    let options = crate::transcode::Options {
        unary_timeout: timeout,
        max_body_size: config.max_body_size,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    Ok(Gateway::new(pool, crate::upstream::Upstream::new(&config.backend, config.upstream_options())?, options)?)
}

/// How the reference API describes itself in its OpenAPI document.
pub fn api_info() -> ApiInfo {
    ApiInfo {
        title: "Switchyard reference API".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "The REST/JSON face of Switchyard's reference gRPC services, served by the \
                      Switchyard gateway from the protos' google.api.http annotations. Errors are \
                      google.rpc.Status bodies; JSON follows the proto3 mapping."
            .into(),
        // Relative: the document is right wherever the gateway listens.
        server: "/".into(),
    }
}

/// The OpenAPI document of the compiled-in protos, as `switchyard openapi` prints it.
pub fn reference_document() -> anyhow::Result<serde_json::Value> {
    let pool = DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET)?;
    let bindings = crate::rules::load_bindings(&pool)?;
    Ok(crate::openapi::document(&pool, &bindings, &api_info()))
}

/// The HTTP application. Layers, outermost first:
/// 1. CORS, when origins are configured: browsers on other origins, preflights answered here;
/// 2. tracing: one span per request (debug level, so free unless asked for);
/// 3. compression: gzip for clients that accept it, on whole responses only (streams must reach
///    the client message by message, not when a compressor's buffer fills);
/// 4. body read timeout: a request body that stops arriving fails instead of holding its call;
/// 5. panic guard: a bug answers 500 with a Status body instead of dropping the connection.
pub fn router(gateway: Arc<Gateway>, cors_origins: &[String], body_read_timeout: Duration) -> Router {
    let doc = crate::openapi::document(gateway.pool(), gateway.routes().bindings().map(|b| b.as_ref()), &api_info());
    let yaml = crate::openapi::to_yaml(&doc);
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    Router::new()
        // Liveness, with each backend's connections and load.
        .route(
            "/healthz",
            get(|State(gw): State<Arc<Gateway>>| async move {
                axum::Json(serde_json::json!({"status": "SERVING", "backends": [gw.upstream().stats()]}))
            }),
        )
        // The gateway's own endpoints: its API, described from the routes it serves.
        .route("/openapi.yaml", get(move || async move { ([(http::header::CONTENT_TYPE, "application/yaml")], yaml) }))
        .route("/openapi.json", get(move || async move { ([(http::header::CONTENT_TYPE, "application/json")], json) }))
        .fallback(|State(gw): State<Arc<Gateway>>, req: Request| async move { gw.handle(req).await })
        .with_state(gateway)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(tower::util::option_layer(
            (!body_read_timeout.is_zero())
                .then(|| tower_http::timeout::RequestBodyTimeoutLayer::new(body_read_timeout)),
        ))
        .layer(compression())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower::util::option_layer(cors(cors_origins)))
}

/// Cross-origin access for browsers, when origins are configured. Preflight requests are
/// answered here, before routing.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| http::HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods(Any)
            .allow_headers(Any)
            .expose_headers(Any)
            .max_age(std::time::Duration::from_secs(600)),
    )
}

fn compression() -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
    // The default already leaves out SSE, gRPC, images and tiny bodies.
    let whole_responses_only = DefaultPredicate::new()
        .and(NotForContentType::new("application/x-ndjson"))
        .and(NotForContentType::new("application/octet-stream"));
    tower_http::compression::CompressionLayer::new().gzip(true).compress_when(whole_responses_only)
}

fn panic_response(_: Box<dyn std::any::Any + Send>) -> Response {
    let e = GatewayError::Grpc(tonic::Status::internal("internal error"));
    let pool = DescriptorPool::new();
    e.to_response(&pool).into_response()
}

/// Builds the gateway from `config` and serves it on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_gateway(listener, gateway(config)?, config, shutdown).await
}

/// Serves an already built gateway on `listener` with `config`'s connection settings until
/// `shutdown`.
pub async fn serve_gateway(
    listener: TcpListener,
    gateway: Gateway,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(Arc::new(gateway), &config.cors_origins, config.body_read_timeout);
    crate::connections::serve(listener, app, config.connection_limits(), shutdown).await?;
    Ok(())
}
