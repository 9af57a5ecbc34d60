//! `switchyard migrate report DIFFLOG`: the evidence to flip a route — per route, how many
//! requests were compared, how many matched, which fields differ most (with an example each),
//! and the latency of the legacy API against gRPC.

use crate::shadow::{DiffRecord, Record};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;

/// One route's figures.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReport {
    pub route: String,
    pub compared: u64,
    pub equal: u64,
    /// Share of equal pairs, 0 to 100.
    pub match_percent: f64,
    /// The paths that differ, most often first, with how often and one example.
    pub fields: Vec<FieldReport>,
    pub legacy_p50_ms: f64,
    pub legacy_p99_ms: f64,
    pub grpc_p50_ms: f64,
    pub grpc_p99_ms: f64,
}

/// One differing path.
#[derive(Debug, serde::Serialize)]
pub struct FieldReport {
    pub path: String,
    pub count: u64,
    pub example: DiffRecord,
}

#[derive(Default)]
struct Acc {
    compared: u64,
    equal: u64,
    fields: BTreeMap<String, (u64, Option<DiffRecord>)>,
    legacy: Option<Histogram<u64>>,
    grpc: Option<Histogram<u64>>,
}

fn record_us(h: &mut Option<Histogram<u64>>, ms: f64) {
    let h = h.get_or_insert_with(|| Histogram::new(3).expect("3 significant figures is valid"));
    let _ = h.record((ms * 1000.0).max(1.0) as u64);
}

fn pct_ms(h: &Option<Histogram<u64>>, q: f64) -> f64 {
    h.as_ref().map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
}

/// Reads a diff log (one JSON record per line; unreadable lines are counted and skipped).
pub fn build(reader: impl BufRead) -> std::io::Result<(Vec<RouteReport>, usize)> {
    let mut routes: BTreeMap<String, Acc> = BTreeMap::new();
    let mut skipped = 0;
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(r) = serde_json::from_str::<Record>(&line) else {
            skipped += 1;
            continue;
        };
        let acc = routes.entry(r.route.clone()).or_default();
        acc.compared += 1;
        if r.equal {
            acc.equal += 1;
        }
        record_us(&mut acc.legacy, r.legacy.latency_ms);
        record_us(&mut acc.grpc, r.grpc.latency_ms);
        for d in r.differences {
            let slot = acc.fields.entry(d.path.clone()).or_insert((0, None));
            slot.0 += 1;
            slot.1.get_or_insert(d);
        }
    }
    let reports = routes
        .into_iter()
        .map(|(route, acc)| {
            let mut fields: Vec<FieldReport> = acc
                .fields
                .into_iter()
                .filter_map(|(path, (count, example))| example.map(|example| FieldReport { path, count, example }))
                .collect();
            fields.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
            RouteReport {
                route,
                compared: acc.compared,
                equal: acc.equal,
                match_percent: if acc.compared == 0 { 0.0 } else { 100.0 * acc.equal as f64 / acc.compared as f64 },
                fields,
                legacy_p50_ms: pct_ms(&acc.legacy, 0.5),
                legacy_p99_ms: pct_ms(&acc.legacy, 0.99),
                grpc_p50_ms: pct_ms(&acc.grpc, 0.5),
                grpc_p99_ms: pct_ms(&acc.grpc, 0.99),
            }
        })
        .collect();
    Ok((reports, skipped))
}

/// The report as text.
pub fn render(reports: &[RouteReport], skipped: usize) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(out, "{}", r.route);
        let _ = writeln!(out, "  compared {:>8}   equal {:>8}   match {:>6.2}%", r.compared, r.equal, r.match_percent);
        let _ = writeln!(
            out,
            "  latency ms   legacy p50 {:.3}  p99 {:.3}   grpc p50 {:.3}  p99 {:.3}",
            r.legacy_p50_ms, r.legacy_p99_ms, r.grpc_p50_ms, r.grpc_p99_ms
        );
        if r.fields.is_empty() {
            let _ = writeln!(out, "  no differences");
        }
        for f in r.fields.iter().take(10) {
            let _ = writeln!(
                out,
                "  {:>6}x {}   e.g. legacy {} vs grpc {}",
                f.count,
                f.path,
                short(&f.example.legacy),
                short(&f.example.grpc)
            );
        }
        out.push('\n');
    }
    if skipped > 0 {
        let _ = writeln!(out, "({skipped} unreadable lines skipped)");
    }
    out
}

fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_each_route() {
        let log = r#"{"route":"GET /a","requestId":"1","equal":true,"legacy":{"status":200,"latencyMs":1.0},"grpc":{"status":200,"latencyMs":2.0}}
{"route":"GET /a","requestId":"2","equal":false,"legacy":{"status":200,"latencyMs":3.0},"grpc":{"status":200,"latencyMs":4.0},"differences":[{"path":"$.age","legacy":1,"grpc":2}]}
not json
{"route":"GET /b","requestId":"3","equal":false,"legacy":{"status":404,"latencyMs":1.0},"grpc":{"status":200,"latencyMs":1.0},"differences":[{"path":"status","legacy":404,"grpc":200},{"path":"$.x","legacy":null,"grpc":1}]}
"#;
        let (reports, skipped) = build(log.as_bytes()).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(reports.len(), 2);
        let a = &reports[0];
        assert_eq!((a.compared, a.equal, a.match_percent), (2, 1, 50.0));
        assert_eq!(a.fields[0].path, "$.age");
        assert!(a.grpc_p50_ms >= a.legacy_p50_ms);
        let text = render(&reports, skipped);
        assert!(text.contains("GET /b") && text.contains("status") && text.contains("match  50.00%"), "{text}");
    }
}
