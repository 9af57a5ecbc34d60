//! `switchyard`: run the reference system (default), or one of its parts.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Switchyard: a REST-to-gRPC migration kit", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: switchyard::serve::ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Backend and gateway in one process (the default).
    Serve(switchyard::serve::ServeArgs),
    /// The gRPC backend alone.
    Backend(backend::Config),
    /// The REST/JSON gateway alone.
    Gateway(gateway::Config),
    /// Compare REST and gRPC side by side: native gRPC, the gateway over HTTP/1.1 and HTTP/2,
    /// and a legacy REST service, on the same store, interleaved.
    Bench(bench::BenchArgs),
    /// The legacy REST service the bench compares against (plain JSON over HTTP, no gRPC).
    LegacyRest(bench::legacy::LegacyArgs),
    /// Print the OpenAPI 3.1 document of the gateway's routes (what openapi.yaml holds).
    Openapi {
        /// Print JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    // The gateway alone sizes its runtime itself (see its --threads); the rest use tokio's default.
    let runtime = match &cli.command {
        Some(Command::Gateway(config)) => config.runtime()?,
        _ => tokio::runtime::Runtime::new()?,
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => switchyard::serve::run(cli.serve).await,
        Some(Command::Serve(args)) => switchyard::serve::run(args).await,
        Some(Command::Backend(config)) => {
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            tracing::info!(addr = %listener.local_addr()?, "backend listening");
            backend::run(listener, &config, switchyard_common::shutdown::signal()).await
        }
        Some(Command::Bench(args)) => bench::run(args).await,
        Some(Command::LegacyRest(args)) => bench::legacy::run(args, switchyard_common::shutdown::signal()).await,
        Some(Command::Openapi { json }) => {
            let doc = gateway::server::reference_document()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", gateway::openapi::to_yaml(&doc));
            }
            Ok(())
        }
        Some(Command::Gateway(config)) => {
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            tracing::info!(addr = %listener.local_addr()?, backend = %config.backend, "gateway listening");
            gateway::run(listener, &config, switchyard_common::shutdown::signal()).await
        }
    }
}
