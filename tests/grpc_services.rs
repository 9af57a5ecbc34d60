//! The backend's infrastructure services, as grpcurl and load balancers use them.

mod common;

use common::System;
use futures::StreamExt;

/// Server reflection lists every service through both protocol versions (grpcurl 1.9+ asks v1,
/// grpcurl 1.8 asks v1alpha), health included.
#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let sys = System::start().await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", sys.grpc)).unwrap().connect().await.unwrap();

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut v1 = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = v1.server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for want in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "types.v1.TypesService",
        "user.v1.UserService",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }

    use tonic_reflection::pb::v1alpha as alpha;
    let mut old = alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let req = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "user.v1.UserService".into(),
        )),
    };
    let mut stream = old.server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    assert!(matches!(
        resp.message_response,
        Some(alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
    ));

    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let mut health = HealthClient::new(channel);
    for service in ["", "user.v1.UserService", "types.v1.TypesService"] {
        let got = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(got.status(), ServingStatus::Serving, "{service:?}");
    }
}

/// A request that is not valid protobuf for its method is the caller's error: INVALID_ARGUMENT,
/// not INTERNAL.
#[tokio::test]
async fn undecodable_requests_are_invalid_argument() {
    let sys = System::start().await;
    let mut grpc = tonic::client::Grpc::new(sys.channel().await);
    grpc.ready().await.unwrap();
    // Field 1 of GetUserRequest is a string; an Int64Value puts a varint there.
    let codec = tonic_prost::ProstCodec::<
        switchyard_proto::pbjson_types::Int64Value,
        switchyard_proto::pbjson_types::Empty,
    >::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/user.v1.UserService/GetUser");
    let err = grpc
        .unary(tonic::Request::new(switchyard_proto::pbjson_types::Int64Value { value: 5 }), path, codec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}
