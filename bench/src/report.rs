//! The side-by-side table, the summary of the ratios that matter, and the JSON report.

use crate::payload::{HeaderSizes, Sizes};
use crate::scenario::{PathKind, Scenario};
use crate::stats::CellResult;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it ran, for reading the numbers right.
    pub machine: String,
    pub settings: serde_json::Value,
    pub cells: Vec<CellResult>,
    pub payloads: Vec<Sizes>,
    pub headers: Option<HeaderSizes>,
    /// Peak resident memory of each server process, in bytes.
    pub peak_rss_bytes: BTreeMap<String, u64>,
    /// Each gateway in front of the backend, GetUser: what it adds over native gRPC.
    pub gateways: Vec<GatewayCost>,
    pub summary: Vec<Ratio>,
}

/// What one gateway path costs at one concurrency (GetUser).
#[derive(Debug, Clone, Serialize)]
pub struct GatewayCost {
    pub path: PathKind,
    pub concurrency: usize,
    /// Its p50 minus native gRPC's in the same cell.
    pub added_p50_ms: f64,
    pub p99_ms: f64,
    pub requests_per_s: f64,
    /// Slowest and fastest round.
    pub requests_per_s_rounds: (f64, f64),
    /// CPU of the gateway process alone (the backend's excluded), per request.
    pub gateway_cpu_us_per_request: Option<f64>,
}

fn gateway_path(p: PathKind) -> bool {
    matches!(p, PathKind::GatewayH1 | PathKind::GatewayH2 | PathKind::GatewayH1NoAccessLog | PathKind::Peer(_))
}

/// A ratio between two paths.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub what: String,
    pub value: f64,
}

/// Whether a process name is one of the backend instances the bench started.
pub(crate) fn is_backend(process: &str) -> bool {
    process == "backend" || process.strip_prefix("backend-").is_some_and(|n| n.parse::<u32>().is_ok())
}

impl Report {
    pub fn cell(&self, s: Scenario, c: usize, p: PathKind) -> Option<&CellResult> {
        self.cells.iter().find(|x| x.scenario == s && x.concurrency == c && x.path == p)
    }

    /// The [`GatewayCost`] of every gateway path of GetUser.
    fn compute_gateways(&mut self) {
        let mut out = Vec::new();
        for c in self.cells.iter().filter(|c| c.scenario == Scenario::GetUser && gateway_path(c.path)) {
            let Some(grpc) = self.cell(Scenario::GetUser, c.concurrency, PathKind::Grpc) else { continue };
            let (Some(l), Some(g)) = (&c.latency_ms, &grpc.latency_ms) else { continue };
            let rps = c.rounds.iter().map(|r| r.requests_per_s);
            // Every process but the backend instances ("backend", "backend-2", …) is the gateway's.
            let cpu: Vec<f64> = c.cpu_ms_per_1k.iter().filter(|(k, _)| !is_backend(k)).map(|(_, v)| *v).collect();
            out.push(GatewayCost {
                path: c.path,
                concurrency: c.concurrency,
                added_p50_ms: l.p50 - g.p50,
                p99_ms: l.p99,
                requests_per_s: c.requests_per_s,
                requests_per_s_rounds: (rps.clone().fold(f64::INFINITY, f64::min), rps.fold(0.0, f64::max)),
                // ms per 1,000 requests is µs per request.
                gateway_cpu_us_per_request: (!cpu.is_empty()).then(|| cpu.iter().sum()),
            });
        }
        self.gateways = out;
    }

    fn gateway_cost(&self, p: PathKind, c: usize) -> Option<&GatewayCost> {
        self.gateways.iter().find(|g| g.path == p && g.concurrency == c)
    }

    /// Ratios of the first and last concurrency levels for GetUser, and of the streams.
    pub fn compute_summary(&mut self, concurrency: &[usize]) {
        self.compute_gateways();
        let (Some(lo), Some(hi)) = (concurrency.iter().min().copied(), concurrency.iter().max().copied()) else {
            return;
        };
        let mut out = Vec::new();
        let p50 = |r: &Report, c, p| r.cell(Scenario::GetUser, c, p).and_then(|x| x.latency_ms.as_ref()).map(|l| l.p50);
        let rps = |r: &Report, c, p| r.cell(Scenario::GetUser, c, p).map(|x| x.requests_per_s);
        for p in [PathKind::GatewayH1, PathKind::GatewayH2, PathKind::LegacyRest] {
            if let (Some(a), Some(b)) = (p50(self, lo, p), p50(self, lo, PathKind::Grpc)) {
                out.push(Ratio { what: format!("get-user p50 at c={lo}: {} / grpc", p.name()), value: a / b });
            }
        }
        for p in [PathKind::GatewayH1, PathKind::GatewayH2, PathKind::LegacyRest] {
            if let (Some(a), Some(b)) = (rps(self, hi, p), rps(self, hi, PathKind::Grpc)) {
                out.push(Ratio { what: format!("get-user req/s at c={hi}: {} / grpc", p.name()), value: a / b });
            }
        }
        for p in [PathKind::GatewayH1, PathKind::GatewayH2, PathKind::LegacyRest] {
            let m = |pk| self.cell(Scenario::GetOrders, lo, pk).and_then(|x| x.messages_per_s);
            if let (Some(a), Some(b)) = (m(p), m(PathKind::Grpc)) {
                out.push(Ratio { what: format!("get-orders msg/s at c={lo}: {} / grpc", p.name()), value: a / b });
            }
        }
        for p in [PathKind::GatewayH1, PathKind::GatewayH2, PathKind::LegacyRest] {
            let m = |pk| self.cell(Scenario::Upload, lo, pk).and_then(|x| x.mb_per_s);
            if let (Some(a), Some(b)) = (m(p), m(PathKind::Grpc)) {
                out.push(Ratio { what: format!("upload MB/s at c={lo}: {} / grpc", p.name()), value: a / b });
            }
        }
        // What the access log costs.
        for c in [lo, hi] {
            if let (Some(x), Some(y)) =
                (p50(self, c, PathKind::GatewayH1), p50(self, c, PathKind::GatewayH1NoAccessLog))
            {
                out.push(Ratio {
                    what: format!("get-user p50 at c={c}: gateway-h1 / without access log"),
                    value: x / y,
                });
            }
        }
        // Migration mode: what passing through costs over the legacy service alone, and what
        // shadowing adds to the client's latency over passing through.
        for (a, b) in [
            (PathKind::LegacyPassthrough, PathKind::LegacyRest),
            (PathKind::LegacyShadowed, PathKind::LegacyPassthrough),
        ] {
            for c in [lo, hi] {
                if let (Some(x), Some(y)) = (p50(self, c, a), p50(self, c, b)) {
                    out.push(Ratio {
                        what: format!("get-user p50 at c={c}: {} / {}", a.name(), b.name()),
                        value: x / y,
                    });
                }
            }
        }
        // Against each peer gateway: Switchyard (HTTP/1.1, as the peers are measured) over it.
        // One gateway cost per path and concurrency: the peers are those at the lowest level.
        let peers: Vec<PathKind> = self
            .gateways
            .iter()
            .filter(|g| g.concurrency == lo && matches!(g.path, PathKind::Peer(_)))
            .map(|g| g.path)
            .collect();
        for peer in peers {
            let ours = PathKind::GatewayH1;
            let name = peer.name();
            let pair = |c| self.gateway_cost(ours, c).zip(self.gateway_cost(peer, c));
            if let Some((a, b)) = pair(lo) {
                out.push(Ratio {
                    what: format!("get-user added p50 at c={lo}: gateway-h1 / {name}"),
                    value: a.added_p50_ms / b.added_p50_ms,
                });
            }
            if let Some((a, b)) = pair(hi) {
                if let (Some(x), Some(y)) = (a.gateway_cpu_us_per_request, b.gateway_cpu_us_per_request) {
                    out.push(Ratio {
                        what: format!("get-user gateway CPU/req at c={hi}: gateway-h1 / {name}"),
                        value: x / y,
                    });
                }
                out.push(Ratio {
                    what: format!("get-user p99 at c={hi}: gateway-h1 / {name}"),
                    value: a.p99_ms / b.p99_ms,
                });
                out.push(Ratio {
                    what: format!("get-user req/s at c={hi}: gateway-h1 / {name}"),
                    value: a.requests_per_s / b.requests_per_s,
                });
            }
        }
        for s in &self.payloads {
            if s.grpc > 5 && s.json > 0 {
                out.push(Ratio {
                    what: format!("{}: JSON bytes / gRPC bytes", s.what),
                    value: s.json as f64 / s.grpc as f64,
                });
            }
        }
        self.summary = out;
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "machine: {}", self.machine);
        let mut last = None;
        for c in &self.cells {
            if last != Some((c.scenario, c.concurrency)) {
                last = Some((c.scenario, c.concurrency));
                let extra = match c.scenario {
                    Scenario::GetOrders => "   msg/s  ttfm p50",
                    Scenario::Upload => "    MB/s",
                    _ => "",
                };
                let _ = writeln!(s, "\n{} @ concurrency {}", c.scenario.name(), c.concurrency);
                let _ = writeln!(
                    s,
                    "  {:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}  {:<28}{extra}",
                    "path", "req/s", "p50 ms", "p90", "p99", "p99.9", "max", "errors", "cpu ms/1k req"
                );
            }
            let l = c.latency_ms.clone();
            let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
            let errors: u64 = c.errors.values().sum();
            let cpu = c.cpu_ms_per_1k.iter().map(|(k, v)| format!("{k} {v:.0}")).collect::<Vec<_>>().join(", ");
            let extra = match c.scenario {
                Scenario::GetOrders => {
                    format!(" {:>8.0} {:>9}", c.messages_per_s.unwrap_or(0.0), f(c.ttfm_ms.as_ref().map(|t| t.p50)))
                }
                Scenario::Upload => format!(" {:>7.1}", c.mb_per_s.unwrap_or(0.0)),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  {:<24} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}  {:<28}{extra}",
                c.path.name(),
                c.requests_per_s,
                f(l.as_ref().map(|l| l.p50)),
                f(l.as_ref().map(|l| l.p90)),
                f(l.as_ref().map(|l| l.p99)),
                f(l.as_ref().map(|l| l.p999)),
                f(l.as_ref().map(|l| l.max)),
                errors,
                cpu,
            );
        }
        if !self.payloads.is_empty() {
            let _ = writeln!(s, "\npayload bytes per message      JSON  JSON+gzip   gRPC  gRPC+gzip");
            for p in &self.payloads {
                let _ =
                    writeln!(s, "  {:<28} {:>6} {:>10} {:>6} {:>10}", p.what, p.json, p.json_gzip, p.grpc, p.grpc_gzip);
            }
        }
        if let Some(h) = &self.headers {
            let _ = writeln!(
                s,
                "headers (uncompressed): REST/1.1 request {} B, response {} B; gRPC request {} B, response+trailers {} B",
                h.rest_http1_request, h.rest_http1_response, h.grpc_request, h.grpc_response_and_trailers
            );
        }
        if !self.peak_rss_bytes.is_empty() {
            let rss: Vec<String> =
                self.peak_rss_bytes.iter().map(|(k, v)| format!("{k} {:.1} MB", *v as f64 / 1e6)).collect();
            let _ = writeln!(s, "peak RSS: {}", rss.join(", "));
        }
        if !self.gateways.is_empty() {
            let _ = writeln!(
                s,
                "\ngateways, get-user        conc  added p50 ms   p99 ms     req/s  (rounds min-max)  gateway CPU µs/req"
            );
            for g in &self.gateways {
                let cpu = g.gateway_cpu_us_per_request.map_or("-".to_owned(), |v| format!("{v:.0}"));
                let _ = writeln!(
                    s,
                    "  {:<24} {:>4} {:>12.3} {:>8.3} {:>9.0}  ({:>6.0}-{:<6.0})   {:>18}",
                    g.path.name(),
                    g.concurrency,
                    g.added_p50_ms,
                    g.p99_ms,
                    g.requests_per_s,
                    g.requests_per_s_rounds.0,
                    g.requests_per_s_rounds.1,
                    cpu
                );
            }
        }
        if !self.summary.is_empty() {
            let _ = writeln!(s, "\nsummary");
            for r in &self.summary {
                let _ = writeln!(s, "  {:<60} {:>6.2}x", r.what, r.value);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_backend_instance_is_told_from_the_gateway() {
        assert!(super::is_backend("backend"));
        assert!(super::is_backend("backend-2"));
        assert!(!super::is_backend("gateway"));
        assert!(!super::is_backend("grpc-gateway"));
        assert!(!super::is_backend("backend-legacy"));
    }
}
