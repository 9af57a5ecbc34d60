//! `switchyard` with no subcommand: the backend and the gateway in one process, the gateway
//! talking to the backend over loopback gRPC exactly as it would across machines.

use std::net::SocketAddr;
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
    #[command(flatten)]
    pub backend: backend::Config,
    #[command(flatten)]
    pub gateway: gateway::Config,
    #[command(flatten)]
    pub migration: migrate::Args,
}

/// `switchyard gateway`: the gateway's command line, with migration mode.
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub command: gateway::config::Command,
    #[command(flatten)]
    pub migration: migrate::Args,
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
    let GatewayArgs { command, migration } = args;
    let listener = TcpListener::bind(command.listen).await?;
    let gw = with_migration(gateway::server::gateway(&command.config).await?, &migration, &command.config)?;
    let backends: Vec<&str> = gw.api().upstreams().all().iter().map(|u| u.name()).collect();
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backends = ?backends, legacy = ?migration.legacy, "gateway listening");
    println!("Switchyard gateway listening on http://{addr}");
    gateway::server::serve_gateway(listener, gw, &command.config, switchyard_common::shutdown::signal()).await
}

/// The lines printed at start-up: where things are and what to try, with the real addresses.
pub fn banner(grpc: SocketAddr, http: SocketAddr, database: &str) -> String {
    format!(
        "Switchyard is running.\n\
         \x20 gRPC backend : {grpc}   (database {database})\n\
         \x20 REST gateway : http://{http}\n\
         \n\
         Try:\n\
         \x20 curl -s -X POST http://{http}/api/v1/users -H 'Content-Type: application/json' \\\n\
         \x20      -d '{{\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\",\"age\":36}}'\n\
         \x20 curl -s 'http://{http}/api/v1/users?pageSize=10'\n\
         \x20 grpcurl -plaintext {grpc} list\n\
         \x20 grpcurl -plaintext -d '{{\"page_size\":10}}' {grpc} user.v1.UserService/ListUsers\n\
         Stop with Ctrl-C.\n"
    )
}

/// Runs both servers until SIGINT/SIGTERM, then shuts both down gracefully.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let grpc_listener = TcpListener::bind(args.grpc_listen).await?;
    let http_listener = TcpListener::bind(args.http_listen).await?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let backend = backend::Backend::open(&args.backend).await?;
    let mut gateway_config = args.gateway.clone();
    gateway_config.api.backends.retain(|b| b.key.is_some());
    gateway_config.api.backends.push(gateway::upstreams::BackendSpec { key: None, url: format!("http://{grpc_addr}") });
    let gateway = with_migration(gateway::server::gateway(&gateway_config).await?, &args.migration, &gateway_config)?;

    let stop = CancellationToken::new();
    let b = tokio::spawn(backend.serve(grpc_listener, stop.clone().cancelled_owned()));
    let g = tokio::spawn({
        let stop = stop.clone();
        async move { gateway::server::serve_gateway(http_listener, gateway, &gateway_config, stop.cancelled_owned()).await }
    });
    println!("{}", banner(grpc_addr, http_addr, &args.backend.database));
    switchyard_common::shutdown::signal().await;
    stop.cancel();
    b.await??;
    g.await??;
    Ok(())
}
