//! The one small interface through which the runtime calls a method, whatever its types.
//!
//! The runtime hands an [`Invoker`] the request as JSON and gets JSON back; how the JSON becomes
//! a message is the invoker's business. [`Typed`] is the compiled-in kind: pbjson serde for JSON
//! and the prost codec on a tonic client, instantiated for each RPC by the generated glue. A
//! dynamic invoker (descriptor-driven, for services the binary was not built with) can implement
//! the same trait without any change to the runtime.

use futures::future::BoxFuture;
use http::uri::PathAndQuery;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

/// Per-call settings the runtime derives from the HTTP request.
#[derive(Debug, Default, Clone)]
pub struct CallMeta {
    /// Request metadata (forwarded headers).
    pub metadata: MetadataMap,
    /// The gRPC deadline, sent to the backend as `grpc-timeout`.
    pub timeout: Option<Duration>,
}

/// A unary call's answer.
#[derive(Debug)]
pub struct UnaryOutput {
    /// Response headers and trailers.
    pub metadata: MetadataMap,
    /// The response (or its `response_body` field) as JSON.
    pub json: Vec<u8>,
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The request JSON does not fit the request message.
    #[error("invalid request: {0}")]
    Request(String),
    /// The backend answered with a non-OK status, or could not be reached.
    #[error(transparent)]
    Status(#[from] tonic::Status),
    /// The response could not be printed as JSON.
    #[error("cannot encode the response: {0}")]
    Response(String),
}

/// Calls one RPC with JSON in and JSON out.
pub trait Invoker: Send + Sync + 'static {
    /// A unary call. `response_field` is the JSON name of the `response_body` field, if any.
    fn unary(
        &self,
        channel: Channel,
        meta: CallMeta,
        request: serde_json::Value,
        response_field: Option<String>,
    ) -> BoxFuture<'static, Result<UnaryOutput, InvokeError>>;
}

/// Invokers by full method name (`package.Service.Method`).
#[derive(Default, Clone)]
pub struct Registry {
    invokers: HashMap<String, Arc<dyn Invoker>>,
}

impl Registry {
    /// Registers an invoker for a method, replacing any earlier one.
    pub fn insert(&mut self, full_method: &str, invoker: Arc<dyn Invoker>) {
        self.invokers.insert(full_method.to_owned(), invoker);
    }

    /// Registers the typed invoker for `full_method` (`package.Service.Method`).
    pub fn typed<Req, Resp>(&mut self, full_method: &str)
    where
        Req: prost::Message + Default + DeserializeOwned + Send + Sync + 'static,
        Resp: prost::Message + Default + Serialize + Send + Sync + 'static,
    {
        self.insert(full_method, Arc::new(Typed::<Req, Resp>::new(full_method)));
    }

    /// The invoker of a method.
    pub fn get(&self, full_method: &str) -> Option<Arc<dyn Invoker>> {
        self.invokers.get(full_method).cloned()
    }
}

/// The compiled-in invoker of one RPC: pbjson for JSON, prost on the wire.
pub struct Typed<Req, Resp> {
    path: PathAndQuery,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Typed<Req, Resp> {
    /// `full_method` is `package.Service.Method`; the gRPC path is `/package.Service/Method`.
    pub fn new(full_method: &str) -> Self {
        let (service, method) = full_method
            .rsplit_once('.')
            .expect("package.Service.Method");
        let path = PathAndQuery::try_from(format!("/{service}/{method}")).expect("valid gRPC path");
        Typed {
            path,
            _types: PhantomData,
        }
    }
}

/// Prints a message, or only its `response_body` field.
fn encode_json<T: Serialize>(msg: &T, field: Option<String>) -> Result<Vec<u8>, InvokeError> {
    let err = |e: serde_json::Error| InvokeError::Response(e.to_string());
    match field {
        None => serde_json::to_vec(msg).map_err(err),
        Some(name) => {
            let mut v = serde_json::to_value(msg).map_err(err)?;
            let part = v
                .get_mut(&name)
                .map(serde_json::Value::take)
                .unwrap_or(serde_json::Value::Null);
            serde_json::to_vec(&part).map_err(err)
        }
    }
}

/// Decodes the request JSON, naming the offending field in the error (`age: invalid digit`).
fn decode_json<Req: DeserializeOwned>(request: serde_json::Value) -> Result<Req, InvokeError> {
    serde_path_to_error::deserialize(request).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            InvokeError::Request(e.inner().to_string())
        } else {
            InvokeError::Request(format!("{path}: {}", e.inner()))
        }
    })
}

/// Turns a channel that is not ready into UNAVAILABLE, which is what it means to a client.
fn not_ready(e: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::unavailable(format!("backend unavailable: {e}"))
}

impl<Req, Resp> Invoker for Typed<Req, Resp>
where
    Req: prost::Message + Default + DeserializeOwned + Send + Sync + 'static,
    Resp: prost::Message + Default + Serialize + Send + Sync + 'static,
{
    fn unary(
        &self,
        channel: Channel,
        meta: CallMeta,
        request: serde_json::Value,
        response_field: Option<String>,
    ) -> BoxFuture<'static, Result<UnaryOutput, InvokeError>> {
        let path = self.path.clone();
        Box::pin(async move {
            let msg: Req = decode_json(request)?;
            let mut req = tonic::Request::from_parts(meta.metadata, Default::default(), msg);
            if let Some(t) = meta.timeout {
                req.set_timeout(t);
            }
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.map_err(not_ready)?;
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            let (metadata, resp, _) = grpc.unary(req, path, codec).await?.into_parts();
            Ok(UnaryOutput {
                metadata,
                json: encode_json(&resp, response_field)?,
            })
        })
    }
}
