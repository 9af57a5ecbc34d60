//! gRPC status codes to HTTP statuses, and the google.rpc.Status JSON body every error carries.

use http::StatusCode;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions, Value as PValue};
use serde_json::{Value, json};
use tonic::Code;

/// The HTTP status for a gRPC code (google/rpc/code.proto's mapping, as grpc-gateway uses it).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        // Not a standard HTTP status: nginx's "client closed request", used by Google APIs.
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        // The caller, not the server, lacks credentials: 401, though the name says "authenticated".
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // A state problem the client must fix first, not a server fault: 400, not 412 (a 412
        // would claim an HTTP conditional header failed).
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Renders `{"code", "message", "details"}`. `details_bin` is the encoded google.rpc.Status that
/// gRPC servers send in `grpc-status-details-bin`; its `Any` details are printed canonically
/// (`"@type"` plus the message's fields) through `pool`, which must know their types.
pub fn status_json(code: Code, message: &str, details_bin: &[u8], pool: &DescriptorPool) -> Value {
    // Some servers send no message (tonic, for a service it does not serve): say what the code
    // means rather than nothing.
    let message = if message.is_empty() { code.description() } else { message };
    json!({
        "code": code as i32,
        "message": message,
        "details": render_details(details_bin, pool),
    })
}

fn render_details(details_bin: &[u8], pool: &DescriptorPool) -> Vec<Value> {
    if details_bin.is_empty() {
        return Vec::new();
    }
    let Some(status_desc) = pool.get_message_by_name("google.rpc.Status") else {
        return Vec::new();
    };
    let Ok(status) = DynamicMessage::decode(status_desc, details_bin) else {
        tracing::warn!("undecodable grpc-status-details-bin");
        return Vec::new();
    };
    let Some(list) = status.get_field_by_name("details").and_then(|v| v.as_list().map(<[PValue]>::to_vec)) else {
        return Vec::new();
    };
    let options = SerializeOptions::new().skip_default_fields(false);
    list.iter()
        .filter_map(PValue::as_message)
        .map(|any| {
            any.serialize_with_options(serde_json::value::Serializer, &options).unwrap_or_else(|_| opaque_any(any))
        })
        .collect()
}

/// An `Any` whose type the pool does not know: its type URL and base64 bytes, as protojson does
/// for unresolvable types, rather than dropping it.
fn opaque_any(any: &DynamicMessage) -> Value {
    use base64::Engine as _;
    let url = any.get_field_by_name("type_url").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let bytes = any.get_field_by_name("value").and_then(|v| v.as_bytes().map(|b| b.to_vec())).unwrap_or_default();
    json!({"@type": url, "value": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_table_status() {
        let table = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    use prost::Message as _;
    use switchyard_proto::google::rpc::Status;

    fn any(type_url: &str, value: Vec<u8>) -> pbjson_types::Any {
        pbjson_types::Any { type_url: type_url.into(), value: value.into() }
    }

    fn encode(code: Code, message: &str, details: Vec<pbjson_types::Any>) -> Vec<u8> {
        Status { code: code as i32, message: message.into(), details }.encode_to_vec()
    }

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    #[test]
    fn bad_request_details_render_canonically() {
        use switchyard_proto::google::rpc::{BadRequest, bad_request::FieldViolation};
        let br = BadRequest {
            field_violations: vec![FieldViolation {
                field: "email".into(),
                description: "not an email".into(),
                ..Default::default()
            }],
        };
        let detail = any("type.googleapis.com/google.rpc.BadRequest", br.encode_to_vec());
        let bin = encode(Code::InvalidArgument, "bad", vec![detail]);
        let v = status_json(Code::InvalidArgument, "bad", &bin, &pool());
        assert_eq!(v["code"], 3);
        assert_eq!(v["message"], "bad");
        let d = &v["details"][0];
        assert_eq!(d["@type"], "type.googleapis.com/google.rpc.BadRequest");
        assert_eq!(d["fieldViolations"][0]["field"], "email");
        assert_eq!(d["fieldViolations"][0]["description"], "not an email");
    }

    #[test]
    fn unknown_and_garbage_details_do_not_break_the_body() {
        let bin = encode(Code::Internal, "m", vec![any("type.googleapis.com/x.Unknown", vec![1, 2])]);
        let v = status_json(Code::Internal, "m", &bin, &pool());
        assert_eq!(v["details"][0]["@type"], "type.googleapis.com/x.Unknown");
        assert_eq!(v["details"][0]["value"], "AQI=");
        let v = status_json(Code::Internal, "m", &[0xff, 0xff, 0xff], &pool());
        assert_eq!(v["details"], json!([]));
    }
}
