//! The flags of `switchyard bench`, each with a default.

use crate::scenario::Scenario;
use std::path::PathBuf;

/// How to run the comparison.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// A scenario to run; repeat the flag for several. Default: all of them.
    #[arg(long = "scenario", value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Concurrency levels (parallel clients), comma-separated. Default 1,16,64 (1,8 with --quick).
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Measured seconds per path in each cell, split into interleaved rounds.
    #[arg(long, default_value_t = 1.2)]
    pub duration: f64,
    /// Requests per path in each cell, instead of a duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Warm-up seconds per path in each cell (not measured).
    #[arg(long, default_value_t = 0.15)]
    pub warmup: f64,
    /// Rounds per cell: the paths take turns (A B C D A B C D ...) so machine drift hits all alike.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw latency percentiles and throughput against concurrency to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Measure an existing deployment: its gRPC backend URL (needs --rest).
    #[arg(long, requires = "rest")]
    pub grpc: Option<String>,
    /// Measure an existing deployment: its gateway URL (needs --grpc).
    #[arg(long, requires = "grpc")]
    pub rest: Option<String>,
    /// With --grpc/--rest: a legacy REST service to compare as well.
    #[arg(long, requires = "grpc")]
    pub legacy: Option<String>,
    /// Orders of the user whose orders get-orders streams.
    #[arg(long, default_value_t = 1000)]
    pub orders: u32,
    /// Size of each upload, in MiB.
    #[arg(long, default_value_t = 4)]
    pub upload_mib: u32,
    /// Seed of the generated data and of the request mix.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only measure the gateway's memory per idle keep-alive connection, with this many
    /// connections, and print it.
    #[arg(long)]
    pub idle_connections: Option<usize>,
    /// A run of a few seconds in all: short cells, fewer orders, small uploads.
    #[arg(long)]
    pub quick: bool,
    /// Another gateway to measure in front of the same backend, as NAME=COMMAND; `{backend}`
    /// in COMMAND becomes the backend's HOST:PORT and `{listen}` the HOST:PORT the peer must
    /// listen on. Spawned and stopped like the bench's own servers (its CPU is charged to it);
    /// GetUser only. Repeatable. E.g. `grpc-gateway=/tmp/peers/grpc-gateway/bin/gateway
    /// -listen {listen} -backend {backend}`.
    #[arg(long = "peer", value_parser = Peer::parse)]
    pub peers: Vec<Peer>,
    /// The database of the servers the bench starts: a `postgres://…` URL runs them on
    /// PostgreSQL, in a schema the bench creates and drops. Default: a fresh SQLite file.
    #[arg(long)]
    pub database: Option<String>,
    /// Backend instances on the one database (more than one needs PostgreSQL): the gateways
    /// take turns on them and native gRPC balances over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub backend_instances: u32,
}

/// A gateway other than ours, started by the bench.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    /// The program and its arguments, placeholders still in them.
    pub argv: Vec<String>,
}

impl Peer {
    fn parse(s: &str) -> Result<Peer, String> {
        let (name, command) = s.split_once('=').ok_or("expected NAME=COMMAND")?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("peer name {name:?}: use letters, digits, '-' and '_'"));
        }
        let argv = shlex::split(command).ok_or("the command's quoting is unbalanced")?;
        if argv.is_empty() {
            return Err("the command is empty".into());
        }
        if !argv.iter().any(|a| a.contains("{listen}")) {
            return Err("the command must contain {listen}, the address the peer listens on".into());
        }
        Ok(Peer { name: name.to_owned(), argv })
    }

    /// The command with its placeholders filled in.
    pub fn command(&self, backend: &str, listen: &str) -> Vec<String> {
        self.argv.iter().map(|a| a.replace("{backend}", backend).replace("{listen}", listen)).collect()
    }
}

impl BenchArgs {
    /// Applies `--quick` and the defaults that depend on it.
    pub fn resolved(mut self) -> Self {
        if self.scenarios.is_empty() {
            self.scenarios = Scenario::ALL.to_vec();
        }
        if self.quick {
            self.duration = self.duration.min(0.2);
            self.warmup = self.warmup.min(0.05);
            self.rounds = self.rounds.min(2);
            self.orders = self.orders.min(100);
            self.upload_mib = self.upload_mib.min(1);
        }
        if self.concurrency.is_empty() {
            self.concurrency = if self.quick { vec![1, 8] } else { vec![1, 16, 64] };
        }
        self.concurrency.retain(|c| *c > 0);
        self.rounds = self.rounds.max(1);
        self
    }
}
