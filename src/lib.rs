//! The `switchyard` binary's library: running backend and gateway together, and (later) the
//! bench and the OpenAPI generator.
//!
//! # Layout
//! - [`serve`]: the default command — backend and gateway in one process.
//! - [`allocator`]: the process's allocator (mimalloc).

pub mod allocator;
pub mod serve;
