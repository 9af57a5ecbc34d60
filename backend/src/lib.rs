//! Switchyard's reference gRPC backend.
//!
//! # Layout
//! - [`config`]: the flags, shared with the `switchyard` binary;
//! - [`store`]: persistence behind small per-domain traits, with SQLite as the default;
//! - [`events`]: live fan-out (order watchers, chat rooms) behind the [`events::EventBus`] trait;
//! - [`metrics`]: request counts and process CPU/memory, for Monitor;
//! - [`services`]: the tonic service implementations (users, orders, uploads, chat, types);
//! - [`error`]: the one error type and its mapping to gRPC statuses with details;
//! - [`server`]: assembles services, health and reflection and serves them on a listener.
//!
//! The binary in `src/bin/backend.rs` only parses flags, binds and calls [`server::run`].

pub mod config;
pub mod error;
pub mod events;
pub mod metrics;
pub mod server;
pub mod services;
pub mod store;

pub use config::Config;
pub use server::{Backend, run};

/// Resolves on SIGINT or SIGTERM, for graceful shutdown of the binaries.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
