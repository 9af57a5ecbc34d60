//! `switchyard` with no subcommand: the backend and the gateway in one process, the gateway
//! talking to the backend over loopback gRPC exactly as it would across machines.

use std::net::SocketAddr;
use std::path::PathBuf;
use switchyard_common::tls::ServerFiles;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Flags of the combined server: the backend's and the gateway's own settings, with the two
/// listen addresses named apart (`--grpc-listen`, `--http-listen`; their environment variables
/// are the standalone servers' `SWITCHYARD_BACKEND_LISTEN` and `SWITCHYARD_GATEWAY_LISTEN`).
/// The gateway's default backend is the backend of this process; keyed `--backend` values are
/// kept.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the gRPC backend.
    #[arg(long, env = "SWITCHYARD_BACKEND_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,
    /// Address of the REST/JSON gateway.
    #[arg(long, env = "SWITCHYARD_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// The backend serves TLS with this certificate chain (PEM), which must name the
    /// `--grpc-listen` address; give the gateway `--backend-ca` to trust it.
    #[arg(long, env = "SWITCHYARD_BACKEND_TLS_CERT", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// The backend certificate's private key (PEM).
    #[arg(long, env = "SWITCHYARD_BACKEND_TLS_KEY", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,
    /// The backend requires client certificates signed by this CA (PEM); give the gateway
    /// `--backend-cert` and `--backend-key`.
    #[arg(long, env = "SWITCHYARD_BACKEND_TLS_CLIENT_CA", requires = "grpc_tls_cert")]
    pub grpc_tls_client_ca: Option<PathBuf>,
    /// The gateway serves HTTPS with this certificate chain (PEM).
    #[arg(long, env = "SWITCHYARD_GATEWAY_TLS_CERT", requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// The gateway certificate's private key (PEM).
    #[arg(long, env = "SWITCHYARD_GATEWAY_TLS_KEY", requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,
    /// The gateway requires client certificates signed by this CA (PEM).
    #[arg(long, env = "SWITCHYARD_GATEWAY_TLS_CLIENT_CA", requires = "http_tls_cert")]
    pub http_tls_client_ca: Option<PathBuf>,
    /// Prometheus metrics at `/metrics` on an address of their own (the standalone backend's
    /// `--metrics-listen`). One process keeps one registry, so this shows the backend's and the
    /// gateway's metrics alike; the gateway's port shows them at `/metrics` as well.
    #[arg(long, env = "SWITCHYARD_BACKEND_METRICS_LISTEN")]
    pub grpc_metrics_listen: Option<SocketAddr>,
    /// The same metrics on another address of their own, e.g. one a scraper on another network
    /// reaches.
    #[arg(long, env = "SWITCHYARD_GATEWAY_METRICS_LISTEN")]
    pub http_metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub backend: backend::Config,
    #[command(flatten)]
    pub gateway: gateway::Config,
    #[command(flatten)]
    pub migration: migrate::Args,
    #[command(flatten)]
    pub telemetry: switchyard_common::telemetry::TelemetryArgs,
}

/// `switchyard gateway`: the gateway's command line, with migration mode.
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub command: gateway::config::Command,
    #[command(flatten)]
    pub migration: migrate::Args,
    #[command(flatten)]
    pub telemetry: switchyard_common::telemetry::TelemetryArgs,
}

/// Puts migration mode in front of `gw` when its flags ask for it.
fn with_migration(
    gw: gateway::Gateway,
    args: &migrate::Args,
    config: &gateway::Config,
) -> anyhow::Result<gateway::Gateway> {
    if !args.enabled() {
        return Ok(gw);
    }
    let migration = migrate::Migration::start(args, config.trusted_proxies.clone())?;
    Ok(gw.with_dispatcher(std::sync::Arc::new(migration)))
}

/// Runs `switchyard gateway` until SIGINT/SIGTERM.
pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let GatewayArgs { mut command, migration, telemetry } = args;
    command.apply_tls()?;
    let listener = TcpListener::bind(command.listen).await?;
    let gw = with_migration(gateway::server::gateway(&command.config).await?, &migration, &command.config)?;
    let backends: Vec<&str> = gw.api().upstreams().all().iter().map(|u| u.name()).collect();
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backends = ?backends, legacy = ?migration.legacy, "gateway listening");
    println!("Switchyard gateway listening on http://{addr}");
    let telemetry = telemetry.init("switchyard-gateway")?;
    let served =
        gateway::server::serve_gateway(listener, gw, &command.config, switchyard_common::shutdown::signal()).await;
    if let Some(t) = telemetry {
        t.shutdown();
    }
    served
}

/// The lines printed at start-up: where things are and what to try, with the real addresses.
pub fn banner(grpc: SocketAddr, http: SocketAddr, database: &str, grpc_tls: bool, http_tls: bool) -> String {
    let web = if http_tls { format!("https://{http}") } else { format!("http://{http}") };
    let grpcurl = if grpc_tls { "grpcurl -cacert CA.pem" } else { "grpcurl -plaintext" };
    format!(
        "Switchyard is running.\n\
         \x20 gRPC backend : {grpc}   (database {database}{grpc_note})\n\
         \x20 REST gateway : {web}\n\
         \n\
         Try:\n\
         \x20 curl -s -X POST {web}/api/v1/users -H 'Content-Type: application/json' \\\n\
         \x20      -d '{{\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\",\"age\":36}}'\n\
         \x20 curl -s '{web}/api/v1/users?pageSize=10'\n\
         \x20 {grpcurl} {grpc} list\n\
         \x20 {grpcurl} -d '{{\"page_size\":10}}' {grpc} user.v1.UserService/ListUsers\n\
         Stop with Ctrl-C.\n",
        grpc_note = if grpc_tls { ", TLS" } else { "" },
    )
}

/// Runs both servers until SIGINT/SIGTERM, then shuts both down gracefully.
pub async fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    args.backend.tls = ServerFiles::from_flags(
        args.grpc_tls_cert.as_ref(),
        args.grpc_tls_key.as_ref(),
        args.grpc_tls_client_ca.as_ref(),
    )
    .map_err(gateway::api::ConfigError::from)?;
    args.gateway.tls = ServerFiles::from_flags(
        args.http_tls_cert.as_ref(),
        args.http_tls_key.as_ref(),
        args.http_tls_client_ca.as_ref(),
    )
    .map_err(gateway::api::ConfigError::from)?;
    let grpc_listener = TcpListener::bind(args.grpc_listen).await?;
    let http_listener = TcpListener::bind(args.http_listen).await?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let backend = backend::Backend::open(&args.backend).await?;
    let mut gateway_config = args.gateway.clone();
    gateway_config.api.backends.retain(|b| b.key.is_some());
    let scheme = if args.backend.tls.is_some() { "https" } else { "http" };
    gateway_config
        .api
        .backends
        .push(gateway::upstreams::BackendSpec { key: None, url: format!("{scheme}://{grpc_addr}") });
    let gateway = with_migration(gateway::server::gateway(&gateway_config).await?, &args.migration, &gateway_config)?;

    let telemetry = args.telemetry.init("switchyard")?;
    let stop = CancellationToken::new();
    let b = tokio::spawn(backend.serve(grpc_listener, stop.clone().cancelled_owned()));
    let g = tokio::spawn({
        let stop = stop.clone();
        async move { gateway::server::serve_gateway(http_listener, gateway, &gateway_config, stop.cancelled_owned()).await }
    });
    let mut metrics = Vec::new();
    for addr in [args.grpc_metrics_listen, args.http_metrics_listen].into_iter().flatten() {
        metrics.push(backend::metrics::listen(addr).await?);
    }
    let tls = (args.backend.tls.is_some(), args.gateway.tls.is_some());
    println!("{}", banner(grpc_addr, http_addr, &backend::store::redacted(&args.backend.database), tls.0, tls.1));
    for addr in metrics {
        println!("  metrics      : http://{addr}/metrics");
    }
    switchyard_common::shutdown::signal().await;
    stop.cancel();
    b.await??;
    g.await??;
    if let Some(t) = telemetry {
        t.shutdown();
    }
    Ok(())
}
