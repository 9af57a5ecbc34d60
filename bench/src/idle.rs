//! What an idle client connection costs the gateway: resident memory before and after opening
//! many keep-alive connections that each made one request and then went quiet.

use crate::proc::rss_bytes;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Memory of the gateway per idle connection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleCost {
    /// Connections opened.
    pub connections: usize,
    /// Gateway RSS before, in KiB.
    pub rss_before_kib: u64,
    /// Gateway RSS with every connection open and idle, in KiB.
    pub rss_after_kib: u64,
    /// The difference per connection, in KiB.
    pub kib_per_connection: f64,
}

/// Opens `n` HTTP/1.1 keep-alive connections to `addr`, each sending one `GET /healthz` and
/// reading its answer, then measures the process `pid` with them all open.
pub async fn measure(pid: u32, addr: &str, n: usize) -> anyhow::Result<IdleCost> {
    let before = rss_bytes(pid).ok_or_else(|| anyhow::anyhow!("cannot read the gateway's memory"))?;
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n").await?;
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        // The answer is small: read until its JSON body has ended.
        while !got.ends_with(b"}") {
            let k = tcp.read(&mut buf).await?;
            anyhow::ensure!(k > 0, "the gateway closed a connection");
            got.extend_from_slice(&buf[..k]);
        }
        open.push(tcp);
    }
    // Let the gateway settle (buffers released after the answers were written).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(pid).ok_or_else(|| anyhow::anyhow!("cannot read the gateway's memory"))?;
    drop(open);
    Ok(IdleCost {
        connections: n,
        rss_before_kib: before / 1024,
        rss_after_kib: after / 1024,
        kib_per_connection: after.saturating_sub(before) as f64 / 1024.0 / n.max(1) as f64,
    })
}
