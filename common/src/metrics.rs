//! The process's Prometheus recorder (the `metrics` facade and its Prometheus exporter): the
//! gateway and the backend record into it, and render it at their `/metrics`. Installed once
//! per process, so a `switchyard serve` process shows both servers' figures on each endpoint.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Latency buckets, in seconds: loopback calls take well under a millisecond, streams minutes.
const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The installed recorder's handle (installing it on first use). `None` when another recorder
/// was installed first by someone else.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(BUCKETS).expect("buckets are non-empty");
            match builder.install_recorder() {
                Ok(h) => {
                    keep_up(h.clone());
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets (the exporter's own default).
const UPKEEP: Duration = Duration::from_secs(5);

/// Folds histogram samples into their buckets every [`UPKEEP`], on a thread of its own.
///
/// The exporter keeps every sample (value and time) until it is folded, which only a scrape or
/// this upkeep does; `install_recorder` leaves the upkeep to its caller. Without it a gateway
/// nobody scrapes grew by ~16 bytes per request (52 -> 65 MB over a minute of GetUser at
/// 13.5k requests a second, ~0.75 GB an hour; flat with the upkeep).
fn keep_up(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP);
            handle.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep; histograms are folded at each scrape only");
    }
}

/// The metrics in the Prometheus text format.
pub fn render() -> String {
    handle().map(|h| h.render()).unwrap_or_default()
}
