//! `switchyard` with no subcommand: the backend and the gateway in one process, the gateway
//! talking to the backend over loopback gRPC exactly as it would across machines.

use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Flags of the combined server.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the gRPC backend.
    #[arg(long, env = "SWITCHYARD_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,
    /// Address of the REST/JSON gateway.
    #[arg(long, env = "SWITCHYARD_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Database URL: sqlite://PATH (created when missing).
    #[arg(long, env = "SWITCHYARD_DATABASE", default_value = "sqlite://data/switchyard.db")]
    pub database: String,
    /// Folder for uploaded files (created when missing).
    #[arg(long, env = "SWITCHYARD_UPLOAD_DIR", default_value = "data/uploads")]
    pub upload_dir: std::path::PathBuf,
    /// Largest accepted upload, in bytes (suffixes KiB, MiB, GiB allowed).
    #[arg(long, env = "SWITCHYARD_MAX_UPLOAD_SIZE", default_value = "1GiB", value_parser = switchyard_common::units::parse_size)]
    pub max_upload_size: u64,
    /// Origins browsers may call the REST API from (CORS), comma-separated; `*` for any.
    #[arg(long = "cors-origin", env = "SWITCHYARD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
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
    let backend_config = backend::Config {
        listen: grpc_addr,
        database: args.database.clone(),
        upload_dir: args.upload_dir.clone(),
        max_upload_size: args.max_upload_size,
    };
    let backend = backend::Backend::open(&backend_config).await?;
    let gateway_config = gateway::Config {
        listen: http_addr,
        cors_origins: args.cors_origins.clone(),
        ..gateway::Config::for_backend(format!("http://{grpc_addr}"))
    };

    let stop = CancellationToken::new();
    let b = tokio::spawn(backend.serve(grpc_listener, stop.clone().cancelled_owned()));
    let g = tokio::spawn({
        let stop = stop.clone();
        async move { gateway::run(http_listener, &gateway_config, stop.cancelled_owned()).await }
    });
    println!("{}", banner(grpc_addr, http_addr, &args.database));
    switchyard_common::shutdown::signal().await;
    stop.cancel();
    b.await??;
    g.await??;
    Ok(())
}
