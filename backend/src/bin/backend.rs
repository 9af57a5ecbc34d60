//! The standalone backend: `backend --listen ADDR --database URL`.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Switchyard's reference gRPC backend")]
struct Args {
    #[command(flatten)]
    config: backend::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.config.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, database = %args.config.database, "backend listening");
    backend::run(listener, &args.config, switchyard_common::shutdown::signal()).await
}
