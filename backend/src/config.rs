//! The backend's flags; each has an environment variable so that deployments need no wrapper.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run the backend.
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// Address the gRPC server listens on (HTTP/2, plaintext).
    #[arg(long, env = "SWITCHYARD_BACKEND_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Database URL: sqlite://PATH (the file and its folder are created when missing).
    #[arg(long, env = "SWITCHYARD_DATABASE", default_value = "sqlite://data/switchyard.db")]
    pub database: String,
    /// Folder for uploaded files (created when missing).
    #[arg(long, env = "SWITCHYARD_UPLOAD_DIR", default_value = "data/uploads")]
    pub upload_dir: PathBuf,
    /// Largest accepted upload, in bytes (suffixes KiB, MiB, GiB allowed).
    #[arg(long, env = "SWITCHYARD_MAX_UPLOAD_SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub max_upload_size: u64,
}

impl Config {
    /// A config with every setting at its default but the database and upload folder, which
    /// live under `dir`.
    pub fn in_dir(listen: SocketAddr, dir: &std::path::Path) -> Self {
        Config {
            listen,
            database: format!("sqlite://{}", dir.join("switchyard.db").display()),
            upload_dir: dir.join("uploads"),
            max_upload_size: 1 << 30,
        }
    }
}

/// Parses `1048576`, `512KiB`, `64MiB` or `1GiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {text:?}"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        _ => {
            return Err(format!("invalid size unit in {text:?}: use KiB, MiB or GiB"));
        }
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("5 MiB"), Ok(5 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
