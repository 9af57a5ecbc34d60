//! `switchyard`: run the reference system (default), or one of its parts.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    Backend(backend::config::Command),
    /// The REST/JSON gateway alone, in front of any gRPC services.
    Gateway(gateway::config::Command),
    /// Compare REST and gRPC side by side: native gRPC, the gateway over HTTP/1.1 and HTTP/2,
    /// and a legacy REST service, on the same store, interleaved.
    Bench(bench::BenchArgs),
    /// The legacy REST service the bench compares against (plain JSON over HTTP, no gRPC).
    LegacyRest(bench::legacy::LegacyArgs),
    /// Print the OpenAPI 3.1 document of the gateway's routes (for the reference services, what
    /// openapi.yaml holds); takes the gateway's API flags.
    Openapi {
        /// Print JSON instead of YAML.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: gateway::config::ApiArgs,
    },
    /// Write the reference services' FileDescriptorSet to standard output, to load them beside
    /// a team's own (`switchyard descriptors > reference.pb`, then `--descriptor-set reference.pb`).
    Descriptors,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    // The gateway alone sizes its runtime itself (see its --threads); the rest use tokio's default.
    let runtime = match &cli.command {
        Some(Command::Gateway(command)) => command.config.runtime(),
        _ => tokio::runtime::Runtime::new(),
    };
    let result = runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(gateway::config::exit_status(&e) as u8)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => switchyard::serve::run(cli.serve).await,
        Some(Command::Serve(args)) => switchyard::serve::run(args).await,
        Some(Command::Backend(command)) => {
            let listener = tokio::net::TcpListener::bind(command.listen).await?;
            tracing::info!(addr = %listener.local_addr()?, "backend listening");
            backend::run(listener, &command.config, switchyard_common::shutdown::signal()).await
        }
        Some(Command::Gateway(command)) => command.run().await,
        Some(Command::Bench(args)) => bench::run(args).await,
        Some(Command::LegacyRest(args)) => bench::legacy::run(args, switchyard_common::shutdown::signal()).await,
        Some(Command::Openapi { json, api }) => {
            let doc = gateway::server::document(&api).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", gateway::openapi::to_yaml(&doc));
            }
            Ok(())
        }
        Some(Command::Descriptors) => {
            use std::io::Write;
            std::io::stdout().write_all(switchyard_proto::FILE_DESCRIPTOR_SET)?;
            Ok(())
        }
    }
}
