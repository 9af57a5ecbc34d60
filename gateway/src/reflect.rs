//! Loading a backend's API through gRPC server reflection: the services it lists, and the files
//! that define them with every file they import. Reflection v1 first, v1alpha for servers that
//! only speak the older protocol (grpc-go before 1.45, grpcurl's era).

use crate::sources::LoadError;
use crate::upstream::Upstream;
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};

/// Files by name, as the server encoded them (options and all).
type Files = BTreeMap<String, Vec<u8>>;

/// The encoded FileDescriptorSet of every service `upstream` lists (the reflection services
/// themselves left out), or why not.
pub async fn fetch(upstream: &Upstream) -> Result<Vec<u8>, LoadError> {
    let err = |error: String| LoadError::Reflection { backend: upstream.name().to_owned(), error };
    let files = match v1::fetch(upstream).await {
        Err(s) if s.code() == tonic::Code::Unimplemented => v1alpha::fetch(upstream).await,
        other => other,
    }
    .map_err(|s| err(s.message().to_owned()))?;
    // A FileDescriptorSet is its files as field 1, one after another.
    let mut set = Vec::new();
    for bytes in files.values() {
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut set);
        prost::encoding::encode_varint(bytes.len() as u64, &mut set);
        set.extend_from_slice(bytes);
    }
    Ok(set)
}

/// The files still missing: imports of the files held that are not held themselves.
fn missing(files: &Files) -> Result<BTreeSet<String>, tonic::Status> {
    let mut want = BTreeSet::new();
    for bytes in files.values() {
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())
            .map_err(|e| tonic::Status::internal(format!("undecodable file descriptor: {e}")))?;
        want.extend(file.dependency.into_iter().filter(|d| !files.contains_key(d)));
    }
    Ok(want)
}

fn add(files: &mut Files, encoded: Vec<Vec<u8>>) -> Result<(), tonic::Status> {
    for bytes in encoded {
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())
            .map_err(|e| tonic::Status::internal(format!("undecodable file descriptor: {e}")))?;
        files.entry(file.name().to_owned()).or_insert(bytes);
    }
    Ok(())
}

/// One client per protocol version; the messages have the same shape in both.
macro_rules! reflection_client {
    ($module:ident, $pb:path) => {
        mod $module {
            use super::{Files, add, missing};
            use crate::upstream::Upstream;
            use pb::server_reflection_client::ServerReflectionClient;
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;
            use $pb as pb;

            /// Sends `requests` on one stream and returns the answers.
            async fn ask(
                upstream: &Upstream,
                requests: Vec<MessageRequest>,
            ) -> Result<Vec<MessageResponse>, tonic::Status> {
                let mut client = ServerReflectionClient::with_origin(upstream.clone(), upstream.origin().clone());
                let n = requests.len();
                let stream = futures::stream::iter(
                    requests
                        .into_iter()
                        .map(|r| pb::ServerReflectionRequest { host: String::new(), message_request: Some(r) }),
                );
                let mut answers = client.server_reflection_info(stream).await?.into_inner();
                let mut out = Vec::with_capacity(n);
                while let Some(answer) = answers.message().await? {
                    match answer.message_response {
                        Some(MessageResponse::ErrorResponse(e)) => {
                            return Err(tonic::Status::new(tonic::Code::from(e.error_code), e.error_message));
                        }
                        Some(r) => out.push(r),
                        None => {}
                    }
                }
                Ok(out)
            }

            pub async fn fetch(upstream: &Upstream) -> Result<Files, tonic::Status> {
                let listed = ask(upstream, vec![MessageRequest::ListServices(String::new())]).await?;
                let services: Vec<String> = listed
                    .into_iter()
                    .filter_map(|r| match r {
                        MessageResponse::ListServicesResponse(l) => Some(l.service),
                        _ => None,
                    })
                    .flatten()
                    .map(|s| s.name)
                    .filter(|s| !s.starts_with("grpc.reflection."))
                    .collect();
                let mut files = Files::new();
                let mut requests: Vec<MessageRequest> =
                    services.into_iter().map(MessageRequest::FileContainingSymbol).collect();
                // Servers send a file's imports with it, or not: ask for what is still missing
                // until nothing is (bounded, in case a server never sends some file).
                for _ in 0..16 {
                    if requests.is_empty() {
                        break;
                    }
                    for answer in ask(upstream, requests).await? {
                        if let MessageResponse::FileDescriptorResponse(f) = answer {
                            add(&mut files, f.file_descriptor_proto)?;
                        }
                    }
                    requests = missing(&files)?.into_iter().map(MessageRequest::FileByFilename).collect();
                }
                Ok(files)
            }
        }
    };
}

reflection_client!(v1, tonic_reflection::pb::v1);
reflection_client!(v1alpha, tonic_reflection::pb::v1alpha);
