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
