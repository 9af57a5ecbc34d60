//! `types.v1.TypesService`: echoes every JSON mapping case back, so the gateway's mapping can be
//! checked end to end without a database in the way. Request metadata whose name starts with
//! `echo-` comes back as response metadata too, to check how headers travel both ways, and what
//! a gateway says about the caller (`authorization`, `x-request-id`, `x-forwarded-*`,
//! `forwarded`) comes back as `seen-<name>`, one value per value received.

use switchyard_proto::types::v1::types_service_server::TypesService;
use switchyard_proto::types::v1::{Event, Response as ResponseMsg, ScalarTypes};
use tonic::metadata::KeyAndValueRef;
use tonic::{Request, Response, Status};

/// The echo service.
#[derive(Clone, Default)]
pub struct TypesApi;

/// At most this much `echo-*` metadata (names and values) is sent back: response headers must
/// stay within what the peer accepts.
const MAX_ECHO: usize = 8 * 1024;

/// Request metadata a gateway adds or forwards about the caller, reported back as `seen-<name>`.
const SEEN: &[&str] =
    &["authorization", "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"];

/// The message back, with the request's `echo-*` metadata as response metadata.
fn echo<T>(req: Request<T>) -> Response<T> {
    let (md, _, msg) = req.into_parts();
    let mut resp = Response::new(msg);
    let mut budget = MAX_ECHO;
    for name in SEEN {
        for v in md.get_all(*name) {
            let size = name.len() + v.len();
            if size <= budget {
                budget -= size;
                let key = format!("seen-{name}").parse::<tonic::metadata::AsciiMetadataKey>().expect("valid name");
                resp.metadata_mut().append(key, v.clone());
            }
        }
    }
    for kv in md.iter() {
        let size = match &kv {
            KeyAndValueRef::Ascii(k, v) => k.as_str().len() + v.len(),
            KeyAndValueRef::Binary(k, v) => k.as_str().len() + v.as_encoded_bytes().len(),
        };
        match kv {
            KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("echo-") && size <= budget => {
                resp.metadata_mut().append(k.clone(), v.clone());
            }
            KeyAndValueRef::Binary(k, v) if k.as_str().starts_with("echo-") && size <= budget => {
                resp.metadata_mut().append_bin(k.clone(), v.clone());
            }
            _ => continue,
        }
        budget -= size;
    }
    resp
}

#[tonic::async_trait]
impl TypesService for TypesApi {
    async fn echo_scalars(&self, req: Request<ScalarTypes>) -> Result<Response<ScalarTypes>, Status> {
        Ok(echo(req))
    }

    async fn echo_event(&self, req: Request<Event>) -> Result<Response<Event>, Status> {
        Ok(echo(req))
    }

    async fn echo_response(&self, req: Request<ResponseMsg>) -> Result<Response<ResponseMsg>, Status> {
        Ok(echo(req))
    }
}
