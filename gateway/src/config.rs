//! The gateway's flags; each has an environment variable `SWITCHYARD_<FLAG>` (lists
//! comma-separated).

use crate::connections::ConnectionLimits;
use crate::upstream::UpstreamOptions;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_common::units::{parse_duration, parse_mem_size};

/// How to run the gateway.
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// Address the REST/JSON server listens on (HTTP/1.1 and h2c on the same port).
    #[arg(long, env = "SWITCHYARD_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The gRPC backend to forward to, e.g. http://127.0.0.1:50051.
    #[arg(long, env = "SWITCHYARD_BACKEND", default_value = "http://127.0.0.1:50051")]
    pub backend: String,
    /// Deadline of unary calls when the client sends no Grpc-Timeout header (e.g. 30s, 500ms;
    /// 0 for none). Streaming calls only get the client's own Grpc-Timeout.
    #[arg(long, env = "SWITCHYARD_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Largest accepted request body of a unary route, and of one message of a streaming one
    /// (an NDJSON line, a WebSocket frame), e.g. 4MiB. Keep it at or below the backend's
    /// message size limit (4 MiB for tonic and grpc-go by default).
    #[arg(long, env = "SWITCHYARD_MAX_BODY_SIZE", default_value = "4MiB", value_parser = parse_mem_size)]
    pub max_body_size: usize,
    /// Largest request header section (names, values and 32 bytes a header, as HTTP/2 counts
    /// them); larger requests get 431. Keep it below the backend's header list limit.
    #[arg(long, env = "SWITCHYARD_MAX_HEADER_SIZE", default_value = "16KiB", value_parser = parse_mem_size)]
    pub max_header_size: usize,
    /// Time a client has to send a request's headers, from their first byte; slower
    /// connections are closed.
    #[arg(long, env = "SWITCHYARD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a client connection with no request in flight is kept open.
    #[arg(long, env = "SWITCHYARD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Interval of HTTP/2 PINGs to clients and to the backend (a peer that does not answer
    /// within the same time is dropped); 0 for none.
    #[arg(long, env = "SWITCHYARD_HTTP2_KEEPALIVE_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// Longest pause in the arrival of a request body; a body that stops for longer gets 408.
    #[arg(long, env = "SWITCHYARD_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Client connections served at once; further ones are answered 503 and closed.
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// HTTP/2 connections to the backend that calls are spread over (more open while all are at
    /// the backend's concurrent stream limit).
    #[arg(long, env = "SWITCHYARD_BACKEND_CONNECTIONS", default_value_t = 2)]
    pub backend_connections: usize,
    /// Calls in flight to the backend at once, live streams included.
    #[arg(long, env = "SWITCHYARD_BACKEND_MAX_CONCURRENCY", default_value_t = 1024)]
    pub backend_max_concurrency: usize,
    /// Calls that may wait for one of those slots; beyond that a call gets 503 at once.
    #[arg(long, env = "SWITCHYARD_BACKEND_QUEUE", default_value_t = 512)]
    pub backend_queue: usize,
    /// Proxies (CIDR, e.g. 10.0.0.0/8) whose X-Forwarded-For, X-Forwarded-Proto,
    /// X-Forwarded-Host and Forwarded headers are kept and appended to; from anyone else they
    /// are replaced.
    #[arg(long = "trusted-proxy", env = "SWITCHYARD_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,
    /// Worker threads of the gateway's runtime. Default: half the cores (at least one), since a
    /// gateway usually shares its machine with the backend — on 2 cores one thread that never
    /// hands requests to another thread served ~30% more requests than two.
    #[arg(long, env = "SWITCHYARD_GATEWAY_THREADS")]
    pub threads: Option<usize>,
    /// Origins that browsers may call the API from (CORS), comma-separated or repeated; `*` for
    /// any. Default: none, so only same-origin pages can.
    #[arg(long = "cors-origin", env = "SWITCHYARD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

impl Config {
    /// A config for `backend` with every other setting at its default.
    pub fn for_backend(backend: impl Into<String>) -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        // The defaults as clap declares them (environment variables included).
        let mut config = Defaults::parse_from(["gateway"]).config;
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.backend = backend.into();
        config
    }

    /// The bounds on client connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            http2_keepalive: Some(self.http2_keepalive_interval).filter(|d| !d.is_zero()),
            max_header_size: self.max_header_size,
        }
    }

    /// How to use the backend's connections.
    pub fn upstream_options(&self) -> UpstreamOptions {
        UpstreamOptions {
            connections: self.backend_connections.max(1),
            max_concurrency: self.backend_max_concurrency.max(1),
            queue: self.backend_queue,
            keepalive: Some(self.http2_keepalive_interval).filter(|d| !d.is_zero()),
            ..UpstreamOptions::default()
        }
    }

    /// The runtime this gateway runs on (see `threads`).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = self.threads.unwrap_or(cores / 2).max(1);
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}
