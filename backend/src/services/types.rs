//! `types.v1.TypesService`: echoes every JSON mapping case back, so the gateway's mapping can be
//! checked end to end without a database in the way. Request metadata whose name starts with
//! `echo-` comes back as response metadata too, to check how headers travel both ways.

use switchyard_proto::types::v1::types_service_server::TypesService;
use switchyard_proto::types::v1::{Event, Response as ResponseMsg, ScalarTypes};
use tonic::metadata::KeyAndValueRef;
use tonic::{Request, Response, Status};

/// The echo service.
#[derive(Clone, Default)]
pub struct TypesApi;

/// The message back, with the request's `echo-*` metadata as response metadata.
fn echo<T>(req: Request<T>) -> Response<T> {
    let (md, _, msg) = req.into_parts();
    let mut resp = Response::new(msg);
    for kv in md.iter() {
        match kv {
            KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("echo-") => {
                resp.metadata_mut().append(k.clone(), v.clone());
            }
            KeyAndValueRef::Binary(k, v) if k.as_str().starts_with("echo-") => {
                resp.metadata_mut().append_bin(k.clone(), v.clone());
            }
            _ => {}
        }
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
