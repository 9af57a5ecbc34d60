//! Switchyard's gateway: REST/JSON in front of gRPC, driven only by `google.api.http` annotations.
//!
//! # Layout
//! The transcoding runtime, independent of any concrete message type:
//! - [`template`]: path templates — parse, match, print back;
//! - [`sources`]: where the API comes from (descriptor sets, `.proto` files), and
//!   [`reflect`]: from the backends' server reflection;
//! - [`api`]: the loaded API as a table of routes, swapped whole on reload;
//! - [`rules`]: reads `google.api.http` (and additional bindings) from a descriptor pool;
//! - [`routes`]: the route table — which binding serves a method and path, or 404/405;
//! - [`bind`]: path variables, query string and body into the request JSON, typed by descriptor;
//! - [`metadata`]: headers to gRPC metadata and back, `Grpc-Timeout`;
//! - [`descriptor`]: what the runtime knows of the well-known types, in one place;
//! - [`json`]: the one proto3 JSON mapping, both ways, for messages known from descriptors;
//! - [`call`]: gRPC calls with messages as wire bytes, every call kind;
//! - [`status`]: gRPC code to HTTP status, and the google.rpc.Status body with details;
//! - [`error`]: the one error type, turned into a response in one place;
//! - [`transcode`]: one request from route to response;
//! - [`observe`]: metrics and the access log of each request;
//! - [`dispatch`]: the seam where migration mode decides who answers a request;
//! - [`upstream`]: the pooled HTTP/2 connections to one backend, and the bound on calls in flight;
//! - [`upstreams`]: which backend serves which service (`--backend [SERVICE_GLOB=]URL`);
//! - [`hygiene`]: checks every request gets before routing (header size, Host);
//! - [`forwarded`]: `X-Forwarded-*` and `Forwarded`, trusting only configured proxies;
//! - [`connections`]: accepts client connections, with their limits and timeouts;
//! - [`server`]: the axum application and how it is run.

pub mod api;
pub mod bind;
pub mod call;
pub mod config;
pub mod connections;
pub mod descriptor;
pub mod dispatch;
pub mod error;
pub mod forwarded;
pub mod grpc_http;
pub mod hygiene;
pub mod idle;
pub mod json;
pub mod metadata;
pub mod observe;
pub mod openapi;
pub mod reflect;
pub mod route_index;
pub mod routes;
pub mod rules;
pub mod server;
pub mod sources;
pub mod status;
pub mod streaming;
pub mod template;
pub mod transcode;
pub mod upstream;
pub mod upstreams;
pub mod websocket;
pub mod wire;
pub mod wire_json;

pub use config::Config;
pub use server::run;
pub use transcode::Gateway;
