//! Switchyard's reference gRPC backend.
//!
//! # Layout
//! - [`config`]: the flags, shared with the `switchyard` binary;
//! - [`auth`]: bearer tokens and JWTs, roles per method, as a tower layer;
//! - [`store`]: persistence behind small per-domain traits, with SQLite as the default;
//! - [`events`]: live fan-out (order watchers, chat rooms) behind the [`events::EventBus`] trait;
//! - [`metrics`]: request counts and process CPU/memory, for Monitor;
//! - [`tls`]: the gRPC port's connections, plaintext or TLS with certificates reloaded on SIGHUP;
//! - [`services`]: the tonic service implementations (users, orders, uploads, chat, types);
//! - [`error`]: the one error type and its mapping to gRPC statuses with details;
//! - [`server`]: assembles services, health and reflection and serves them on a listener.
//!
//! The binary in `src/bin/backend.rs` only parses flags, binds and calls [`server::run`].

pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod metrics;
pub mod pg_bus;
pub mod server;
pub mod services;
pub mod store;
pub mod tls;

pub use config::Config;
pub use server::{Backend, run};
