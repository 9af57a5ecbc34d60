//! Serves a [`Gateway`] over HTTP/1.1 and h2c on one listener.

use crate::api::{Api, ApiConfig, ConfigError};
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::error::GatewayError;
use crate::openapi::ApiInfo;
use crate::transcode::Gateway;
use crate::upstreams::Upstreams;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost_reflect::DescriptorPool;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use switchyard_common::tls::ServerTls;
use tokio::net::TcpListener;

/// The reference services' descriptors, served when no API source is given.
#[cfg(feature = "reference")]
pub fn reference_set() -> Option<&'static [u8]> {
    Some(switchyard_proto::FILE_DESCRIPTOR_SET)
}

/// Without the reference services compiled in, the gateway needs an API source.
#[cfg(not(feature = "reference"))]
pub fn reference_set() -> Option<&'static [u8]> {
    None
}

/// How the document describes the API: the reference services' own words, or a plain title
/// for a team's API.
pub fn api_info(sources_given: bool) -> ApiInfo {
    let (title, description) = if sources_given {
        (
            "API served by Switchyard",
            "The REST/JSON face of these gRPC services, served by the Switchyard gateway from their google.api.http annotations. Errors are google.rpc.Status bodies; JSON follows the proto3 mapping.",
        )
    } else {
        (
            "Switchyard reference API",
            "The REST/JSON face of Switchyard's reference gRPC services, served by the Switchyard gateway from the protos' google.api.http annotations. Errors are google.rpc.Status bodies; JSON follows the proto3 mapping.",
        )
    };
    ApiInfo {
        title: title.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: description.into(),
        // Relative: the document is right wherever the gateway listens.
        server: "/".into(),
    }
}

/// Loads the API `config` names (the reference services when it names none) and connects
/// (lazily) to its backends. A configuration the gateway cannot serve is a [`ConfigError`].
pub async fn gateway(config: &Config) -> Result<Gateway, ConfigError> {
    let options = config.upstream_options()?;
    if let Some(tls) = &options.tls {
        switchyard_common::tls::reload_on_sighup("gateway's backend connections", tls.clone());
    }
    let upstreams = Arc::new(Upstreams::new(&config.api.backends, &options)?);
    let sources = config.api.sources();
    if sources.is_empty() && reference_set().is_none() {
        return Err(ConfigError::Other("no API to serve: give --descriptor-set, --proto or --reflect".into()));
    }
    let api_config = ApiConfig {
        info: api_info(!sources.is_empty()),
        sources,
        selection: config.api.selection(),
        default_set: reference_set(),
    };
    let api = Api::load(api_config, upstreams).await?;
    let options = crate::transcode::Options {
        unary_timeout: Some(config.timeout).filter(|t| !t.is_zero()),
        max_body_size: config.max_body_size,
        trusted_proxies: config.trusted_proxies.clone(),
        access_log: config.access_log == "on",
    };
    Ok(Gateway::new(Arc::new(api), options))
}

/// The OpenAPI document of the API `args` names, as `switchyard openapi` prints it (reflection
/// asks the backends).
pub async fn document(args: &crate::config::ApiArgs) -> Result<serde_json::Value, ConfigError> {
    let upstreams = Upstreams::new(&args.backends, &Default::default())?;
    let sources = args.sources();
    let api_config = ApiConfig {
        info: api_info(!sources.is_empty()),
        sources,
        selection: args.selection(),
        default_set: reference_set(),
    };
    let api = Api::load(api_config, Arc::new(upstreams)).await?;
    Ok(serde_json::from_str(&api.table().openapi_json).expect("the document is JSON"))
}

/// The HTTP application: the gateway's own endpoints (health, metrics, the OpenAPI document,
/// `/_switchyard/…`) and, for every other path, the gateway itself. Both sit behind the same
/// layers; the gateway's side is one service rather than an axum fallback, because a router's
/// layers clone a boxed service and box a future per layer on every request (some forty
/// allocations per call before the gateway saw it).
///
/// Cloned for every request (each connection's service hands one to its request): one shared
/// pointer, where cloning the two boxed services was two allocations per request.
#[derive(Clone)]
pub struct App(Arc<Sides>);

struct Sides {
    own: HttpService,
    gateway: HttpService,
}

/// One side of the application, layered and boxed once.
type HttpService = tower::util::BoxCloneSyncService<Request, Response, Infallible>;

impl App {
    /// Answers one request.
    pub async fn call(&self, req: Request) -> Response {
        use tower::ServiceExt;
        let _active = crate::idle::Active::new();
        let side = if is_own_endpoint(req.uri().path()) { &self.0.own } else { &self.0.gateway };
        side.clone().oneshot(req).await.unwrap_or_else(|never| match never {})
    }
}

/// Paths the gateway answers itself; never routed to a backend.
fn is_own_endpoint(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics" | "/readyz" | "/openapi.yaml" | "/openapi.json")
        || path.starts_with("/_switchyard/")
}

/// The gateway as a service over any request body.
#[derive(Clone)]
struct GatewayService(Arc<Gateway>);

impl<B> tower::Service<http::Request<B>> for GatewayService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let gateway = self.0.clone();
        Box::pin(async move { Ok(gateway.handle(req.map(crate::connections::boxed)).await) })
    }
}

/// Builds the application. Layers, outermost first:
/// 1. CORS, when origins are configured: browsers on other origins, preflights answered here;
/// 2. tracing: one span per request, at debug level (stacked only when that level is on);
/// 3. compression: gzip for clients that accept it, on whole responses only (streams must reach
///    the client message by message, not when a compressor's buffer fills);
/// 4. body read timeout: a request body that stops arriving fails instead of holding its call;
/// 5. panic guard: a bug answers 500 with a Status body instead of dropping the connection.
pub fn app(gateway: Arc<Gateway>, cors_origins: &[String], body_read_timeout: Duration) -> App {
    let own = layered(own_endpoints(gateway.clone()), cors_origins, body_read_timeout);
    let gateway = layered(GatewayService(gateway), cors_origins, body_read_timeout);
    App(Arc::new(Sides { own, gateway }))
}

/// A request as the panic guard hands it on when bodies have a read timeout.
type TimedRequest = http::Request<tower_http::timeout::TimeoutBody<axum::body::Body>>;

/// Wraps `inner` in the application's layers (see [`app`]).
fn layered<S>(inner: S, cors_origins: &[String], body_read_timeout: Duration) -> HttpService
where
    S: tower::Service<Request, Response = Response, Error = Infallible>
        + tower::Service<TimedRequest, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <S as tower::Service<Request>>::Future: Send + 'static,
    <S as tower::Service<TimedRequest>>::Future: Send + 'static,
{
    let timeout =
        (!body_read_timeout.is_zero()).then(|| tower_http::timeout::RequestBodyTimeoutLayer::new(body_read_timeout));
    // tower-http's request spans and events are at DEBUG: the layer is left out unless the log
    // filter lets them through (it timed every request for nothing otherwise).
    let trace = tracing::enabled!(target: "tower_http::trace::on_request", tracing::Level::DEBUG).then(|| {
        tower::ServiceBuilder::new()
            .map_response(IntoResponse::into_response)
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .into_inner()
    });
    let service = tower::ServiceBuilder::new()
        .option_layer(trace)
        .map_response(IntoResponse::into_response)
        .layer(compression())
        .option_layer(timeout)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .service(inner);
    match cors(cors_origins) {
        Some(cors) => tower::util::BoxCloneSyncService::new(tower::Layer::layer(&cors, service)),
        None => tower::util::BoxCloneSyncService::new(service),
    }
}

/// The gateway's own endpoints.
fn own_endpoints(gateway: Arc<Gateway>) -> Router {
    Router::new()
        // Liveness, with each backend's connections and load.
        .route(
            "/healthz",
            get(|State(gw): State<Arc<Gateway>>| async move {
                let backends: Vec<_> = gw.api().upstreams().all().iter().map(|u| u.stats()).collect();
                axum::Json(serde_json::json!({"status": "SERVING", "backends": backends}))
            }),
        )
        // Prometheus metrics of the gateway (and, in `switchyard serve`, of the backend).
        .route(
            "/metrics",
            get(|State(gw): State<Arc<Gateway>>| async move {
                crate::observe::backends(gw.api().upstreams());
                ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], switchyard_common::metrics::render())
            }),
        )
        // Readiness: 200 only when every served service has a backend the health checks found
        // SERVING.
        .route(
            "/readyz",
            get(|State(gw): State<Arc<Gateway>>| async move {
                let table = gw.api().table();
                let mut waiting: Vec<String> = table
                    .routes
                    .routes()
                    .filter(|r| !r.upstream.ready())
                    .map(|r| r.method.parent_service().full_name().to_owned())
                    .collect();
                waiting.sort();
                waiting.dedup();
                let status =
                    if waiting.is_empty() { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE };
                (status, axum::Json(serde_json::json!({"ready": waiting.is_empty(), "waiting": waiting})))
            }),
        )
        // The gateway's own endpoints: its API, described from the routes it serves now.
        .route(
            "/openapi.yaml",
            get(|State(gw): State<Arc<Gateway>>| async move {
                ([(http::header::CONTENT_TYPE, "application/yaml")], gw.api().table().openapi_yaml.clone())
            }),
        )
        .route(
            "/openapi.json",
            get(|State(gw): State<Arc<Gateway>>| async move {
                ([(http::header::CONTENT_TYPE, "application/json")], gw.api().table().openapi_json.clone())
            }),
        )
        // Migration mode's counters (404 without it); the rest of /_switchyard is the gateway's
        // own too, never proxied.
        .route(
            "/_switchyard/migration",
            get(|State(gw): State<Arc<Gateway>>| async move {
                match gw.dispatcher() {
                    Some(d) => axum::Json(d.status()).into_response(),
                    None => not_found("/_switchyard/migration"),
                }
            }),
        )
        .route("/_switchyard/{*rest}", axum::routing::any(|req: Request| async move { not_found(req.uri().path()) }))
        .with_state(gateway)
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

fn compression() -> tower_http::compression::CompressionLayer<WholeResponses> {
    tower_http::compression::CompressionLayer::new().gzip(true).compress_when(WholeResponses)
}

/// Which responses are compressed: whole ones of at least 32 bytes. tower-http's default
/// predicate leaves out gRPC (not gRPC-Web), images (not SVG) and server-sent events; streams
/// (NDJSON), raw bytes and answers relayed from elsewhere (the legacy API, which go out as they
/// came) are left out too. One predicate rather than a chain of tower-http's: the chain looked
/// the content type up once per link and was cloned for every response.
#[derive(Debug, Clone, Copy)]
pub struct WholeResponses;

/// Content types never compressed, each but for a more specific one that is.
const NOT_COMPRESSED: [(&str, Option<&str>); 5] = [
    ("application/grpc", Some("application/grpc-web")),
    ("image/", Some("image/svg+xml")),
    ("text/event-stream", None),
    ("application/x-ndjson", None),
    ("application/octet-stream", None),
];

impl tower_http::compression::Predicate for WholeResponses {
    fn should_compress<B: http_body::Body>(&self, response: &http::Response<B>) -> bool {
        use tower_http::compression::predicate::SizeAbove;
        if !SizeAbove::new(32).should_compress(response)
            || response.extensions().get::<crate::dispatch::Verbatim>().is_some()
        {
            return false;
        }
        let cty = response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        NOT_COMPRESSED
            .iter()
            .all(|(prefix, except)| except.is_some_and(|e| cty.starts_with(e)) || !cty.starts_with(prefix))
    }
}

fn not_found(path: &str) -> Response {
    let e = GatewayError::NoRoute { method: http::Method::GET, path: path.to_owned() };
    e.to_response(&DescriptorPool::new()).into_response()
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
    let gateway = gateway(config).await?;
    serve_gateway(listener, gateway, config, shutdown).await
}

/// Serves a built gateway on `listener` with `config`'s connection settings until `shutdown`,
/// reloading its API on SIGHUP and, with reflection, every `--reflect-interval`.
pub async fn serve_gateway(
    listener: TcpListener,
    gateway: Gateway,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let gateway = Arc::new(gateway);
    let checks = (!config.health_check_interval.is_zero())
        .then(|| gateway.api().upstreams_arc().check_health(config.health_check_interval));
    let reloads = tokio::spawn(reload_on_signals(
        gateway.api().clone(),
        gateway.dispatcher().cloned(),
        config.api.reflect_interval,
    ));
    let tls = match &config.tls {
        Some(files) => {
            let tls = ServerTls::load(files.clone(), switchyard_common::tls::ALPN_H2_HTTP1)?;
            switchyard_common::tls::reload_on_sighup("gateway", tls.clone());
            Some(tls)
        }
        None => None,
    };
    let app = app(gateway, &config.cors_origins, config.body_read_timeout);
    let served = crate::connections::serve(listener, app, config.connection_limits(), tls, shutdown).await;
    reloads.abort();
    if let Some(c) = checks {
        c.abort();
    }
    Ok(served?)
}

/// Reloads the API on SIGHUP, and every `interval` when it comes from reflection. A reload that
/// fails is logged and the API keeps serving as it was.
async fn reload_on_signals(api: Arc<Api>, dispatcher: Option<Arc<dyn Dispatcher>>, interval: Option<Duration>) {
    if !api.reloadable() && dispatcher.is_none() {
        return;
    }
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = interval.filter(|_| api.reflects()).map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t.reset();
        t
    });
    loop {
        let hup = async {
            #[cfg(unix)]
            if let Some(h) = hangup.as_mut() {
                h.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        let timer = async {
            match tick.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = hup => tracing::info!("SIGHUP: reloading the API"),
            () = timer => tracing::debug!("reflection interval: reloading the API"),
        }
        if let Err(e) = api.reload().await {
            tracing::error!(error = %e, "reload refused; the previous API keeps serving");
        }
        if let Some(d) = &dispatcher
            && let Err(e) = d.reload()
        {
            tracing::error!(error = %e, "migration plan reload refused; the previous plan keeps serving");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_http::compression::Predicate as _;

    fn response(content_type: &str, len: usize) -> http::Response<String> {
        let mut r = http::Response::new("x".repeat(len));
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_str(content_type).unwrap());
        r
    }

    #[test]
    fn whole_responses_of_32_bytes_or_more_are_compressed_as_tower_http_would() {
        for (cty, yes) in [
            ("application/json", true),
            ("text/plain; charset=utf-8", true),
            ("application/grpc", false),
            ("application/grpc+proto", false),
            ("application/grpc-web+proto", true),
            ("image/png", false),
            ("image/svg+xml", true),
            ("text/event-stream", false),
            ("application/x-ndjson", false),
            ("application/octet-stream", false),
        ] {
            assert_eq!(WholeResponses.should_compress(&response(cty, 64)), yes, "{cty}");
        }
        assert!(!WholeResponses.should_compress(&response("application/json", 31)));
        let mut relayed = response("application/json", 64);
        relayed.extensions_mut().insert(crate::dispatch::Verbatim);
        assert!(!WholeResponses.should_compress(&relayed));
    }
}
