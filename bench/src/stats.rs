//! Latency histograms (hdrhistogram) and what a cell of the run reports.

use crate::scenario::{Outcome, PathKind, Scenario};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the workers of one path saw.
pub struct Recorder {
    /// Request latency in microseconds.
    pub latency: Histogram<u64>,
    /// Time to first message of streams, in microseconds.
    pub ttfm: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Messages streamed, or bytes uploaded, by successful requests.
    pub units: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        Recorder { latency: h(), ttfm: h(), ok: 0, errors: BTreeMap::new(), units: 0 }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 600_000_000)
}

impl Recorder {
    pub fn record(&mut self, out: &Outcome) {
        if out.ok() {
            self.ok += 1;
            self.units += out.units;
            let _ = self.latency.record(micros(out.latency));
            if let Some(t) = out.ttfm {
                let _ = self.ttfm.record(micros(t));
            }
        } else {
            *self.errors.entry(out.status.clone()).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.ttfm.add(&other.ttfm);
        self.ok += other.ok;
        self.units += other.units;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

/// One path in one cell (scenario x concurrency).
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub scenario: Scenario,
    pub concurrency: usize,
    pub path: PathKind,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests by status.
    pub errors: BTreeMap<String, u64>,
    /// Measured seconds (warm-up excluded).
    pub seconds: f64,
    pub requests_per_s: f64,
    pub latency_ms: Option<Percentiles>,
    /// Streams: time to the first message.
    pub ttfm_ms: Option<Percentiles>,
    /// Streams: messages per second.
    pub messages_per_s: Option<f64>,
    /// Uploads: megabytes (10^6 bytes) per second.
    pub mb_per_s: Option<f64>,
    /// CPU milliseconds per 1,000 requests, by server process.
    pub cpu_ms_per_1k: BTreeMap<String, f64>,
    /// Each round on its own: how far the figures spread within the run.
    pub rounds: Vec<Round>,
}

/// One round of one path in a cell.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub requests_per_s: f64,
    pub p50_ms: Option<f64>,
}

impl Round {
    pub fn of(rec: &Recorder, seconds: f64) -> Self {
        Round {
            requests_per_s: rec.ok as f64 / seconds.max(1e-9),
            p50_ms: (!rec.latency.is_empty()).then(|| rec.latency.value_at_quantile(0.5) as f64 / 1000.0),
        }
    }
}

impl CellResult {
    pub fn new(
        scenario: Scenario,
        concurrency: usize,
        path: PathKind,
        rec: &Recorder,
        seconds: f64,
        cpu_seconds: &BTreeMap<String, f64>,
        rounds: Vec<Round>,
    ) -> Self {
        let secs = seconds.max(1e-9);
        let requests = rec.ok;
        CellResult {
            scenario,
            concurrency,
            path,
            requests,
            errors: rec.errors.clone(),
            seconds,
            requests_per_s: requests as f64 / secs,
            latency_ms: Percentiles::of(&rec.latency),
            ttfm_ms: Percentiles::of(&rec.ttfm),
            messages_per_s: (scenario == Scenario::GetOrders).then(|| rec.units as f64 / secs),
            mb_per_s: (scenario == Scenario::Upload).then(|| rec.units as f64 / 1e6 / secs),
            cpu_ms_per_1k: cpu_seconds
                .iter()
                .filter(|_| requests > 0)
                .map(|(k, s)| (k.clone(), s * 1000.0 * 1000.0 / requests as f64))
                .collect(),
            rounds,
        }
    }
}
