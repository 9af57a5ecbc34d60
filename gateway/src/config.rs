//! The gateway's flags; each has an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// Largest accepted request body of a unary route, and of one message of a streaming one, in
    /// bytes.
    #[arg(long, env = "SWITCHYARD_MAX_BODY_SIZE", default_value_t = 4 * 1024 * 1024)]
    pub max_body_size: usize,
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
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            backend: backend.into(),
            timeout: Duration::from_secs(30),
            max_body_size: 4 * 1024 * 1024,
            threads: None,
            cors_origins: Vec::new(),
        }
    }
}

impl Config {
    /// The runtime this gateway runs on (see `threads`).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = self.threads.unwrap_or(cores / 2).max(1);
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!("invalid duration unit in {text:?}: use ms, s, m or h"));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "s", "1d", "-1s", "x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
