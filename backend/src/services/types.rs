//! `types.v1.TypesService`: echoes every JSON mapping case back, so the gateway's mapping can be
//! checked end to end without a database in the way.

use switchyard_proto::types::v1::types_service_server::TypesService;
use switchyard_proto::types::v1::{Event, Response as ResponseMsg, ScalarTypes};
use tonic::{Request, Response, Status};

/// The echo service.
#[derive(Clone, Default)]
pub struct TypesApi;

#[tonic::async_trait]
impl TypesService for TypesApi {
    async fn echo_scalars(&self, req: Request<ScalarTypes>) -> Result<Response<ScalarTypes>, Status> {
        Ok(Response::new(req.into_inner()))
    }

    async fn echo_event(&self, req: Request<Event>) -> Result<Response<Event>, Status> {
        Ok(Response::new(req.into_inner()))
    }

    async fn echo_response(&self, req: Request<ResponseMsg>) -> Result<Response<ResponseMsg>, Status> {
        Ok(Response::new(req.into_inner()))
    }
}
