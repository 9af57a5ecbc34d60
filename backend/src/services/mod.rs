//! The gRPC service implementations: each validates, calls the store, and returns `ApiError`s
//! that become statuses in `error.rs`.

pub mod chat;
pub mod order;
mod room_order;
pub mod types;
pub mod upload;
pub mod user;
