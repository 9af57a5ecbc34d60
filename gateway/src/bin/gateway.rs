//! The standalone gateway: `gateway --listen ADDR --backend URL`.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Switchyard's REST/JSON to gRPC gateway")]
struct Args {
    #[command(flatten)]
    config: gateway::Config,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    args.config.runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.config.listen).await?;
        tracing::info!(addr = %listener.local_addr()?, backend = %args.config.backend, "gateway listening");
        gateway::run(listener, &args.config, switchyard_common::shutdown::signal()).await
    })
}
