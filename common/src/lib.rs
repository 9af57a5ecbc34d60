//! What Switchyard's servers share, so that the backend and the gateway can be built and run
//! apart without depending on each other.
//!
//! # Layout
//! - [`units`]: flag values with units (`30s`, `16KiB`);
//! - [`metrics`]: the process's Prometheus recorder;
//! - [`shutdown`]: the signal that stops a server, and the grace period of its drain;
//! - [`rfc3339`]: instants as RFC 3339 text, without the formatting machinery.

pub mod logging;
pub mod metrics;
pub mod net;
pub mod rfc3339;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod units;
