//! `switchyard`: run the reference system (default), or one of its parts.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the gateway allocates and frees many small buffers per
/// request (headers, JSON, HTTP/2 frames), and glibc spent ~15% of its CPU there under load
/// (`perf`, GetUser at concurrency 50); mimalloc's thread-local free lists make that a few percent.
#[global_allocator]
static ALLOCATOR: switchyard::allocator::Allocator = switchyard::allocator::Allocator;

#[derive(Parser)]
#[command(version, about = "Switchyard: a REST-to-gRPC migration kit", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: switchyard::serve::ServeArgs,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up")]
enum Command {
    /// Backend and gateway in one process (the default).
    Serve(switchyard::serve::ServeArgs),
    /// The gRPC backend alone.
    Backend(backend::config::Command),
    /// The REST/JSON gateway alone, in front of any gRPC services (and, with --legacy, of the
    /// legacy REST API).
    Gateway(switchyard::serve::GatewayArgs),
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
    /// Migration mode's tools.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Write starter .proto files from an OpenAPI 3.0/3.1 document (the legacy API's).
    Import {
        /// The OpenAPI document (YAML or JSON).
        openapi: std::path::PathBuf,
        /// The proto package, e.g. petstore.v1.
        #[arg(long)]
        package: String,
        /// The folder to write into (the file goes to <out>/<package path>/).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Write the reference services' FileDescriptorSet to standard output, to load them beside
    /// a team's own (`switchyard descriptors > reference.pb`, then `--descriptor-set reference.pb`).
    Descriptors,
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// Summarise a diff log: per route, pairs compared, match %, the fields that differ most,
    /// latency of legacy against gRPC.
    Report {
        /// The --diff-log file.
        diff_log: std::path::PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    switchyard_common::logging::init();
    let cli = Cli::parse();
    // The gateway alone sizes its runtime itself (see its --threads); the rest use tokio's default.
    let runtime = match &cli.command {
        Some(Command::Gateway(args)) => args.command.config.runtime(),
        _ => tokio::runtime::Runtime::new(),
    };
    let result = runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(run(cli)));
    switchyard_common::logging::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let config_error = e.downcast_ref::<migrate::MigrationError>().is_some()
                || e.downcast_ref::<migrate::import::ImportError>().is_some();
            ExitCode::from(if config_error { 2 } else { gateway::config::exit_status(&e) as u8 })
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => switchyard::serve::run(cli.serve).await,
        Some(Command::Serve(args)) => switchyard::serve::run(args).await,
        Some(Command::Backend(command)) => command.run(switchyard_common::shutdown::signal()).await,
        Some(Command::Gateway(args)) => switchyard::serve::gateway(args).await,
        Some(Command::Migrate(MigrateCommand::Report { diff_log, json })) => {
            let file = std::fs::File::open(&diff_log)?;
            let (reports, skipped) = migrate::report::build(std::io::BufReader::new(file))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", migrate::report::render(&reports, skipped));
            }
            Ok(())
        }
        Some(Command::Import { openapi, package, out }) => {
            let done = migrate::import::import(&openapi, &package, &out)?;
            println!(
                "wrote {} ({} services, {} RPCs); serve it with --proto {} --proto-path {}",
                done.file.display(),
                done.services,
                done.rpcs,
                done.import_path,
                out.display()
            );
            if !done.notes.is_empty() {
                eprintln!("not expressed in proto ({}), kept as comments:", done.notes.len());
                for n in &done.notes {
                    eprintln!("  - {n}");
                }
            }
            Ok(())
        }
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
