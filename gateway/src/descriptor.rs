//! What the gateway knows about the well-known types, in one place: which messages stand for a
//! JSON scalar (wrappers), which print as one string (Timestamp, Duration, FieldMask), and which
//! are opaque JSON (Struct, Value, Any). Binding, routing and the OpenAPI document all ask here.

use prost_reflect::{Kind, MessageDescriptor};

/// `google.protobuf.*Value`: messages that stand for a nullable scalar in JSON.
pub fn is_scalar_wrapper(m: &MessageDescriptor) -> bool {
    matches!(
        m.full_name(),
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// Well-known messages whose JSON form is a single string.
pub fn is_string_wkt(m: &MessageDescriptor) -> bool {
    matches!(m.full_name(), "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask")
}

/// Well-known messages with a JSON form of their own (anything but an object of their fields).
pub fn is_special_wkt(m: &MessageDescriptor) -> bool {
    is_scalar_wrapper(m)
        || is_string_wkt(m)
        || matches!(
            m.full_name(),
            "google.protobuf.Struct"
                | "google.protobuf.Value"
                | "google.protobuf.ListValue"
                | "google.protobuf.Any"
                | "google.protobuf.Empty"
        )
}

/// The message of a field that is an ordinary message in JSON (an object of its fields): not a
/// map, not repeated, not a well-known type with a JSON form of its own.
pub fn plain_message(kind: &Kind, list_or_map: bool) -> Option<MessageDescriptor> {
    match kind {
        Kind::Message(m) if !list_or_map && !is_special_wkt(m) => Some(m.clone()),
        _ => None,
    }
}

/// Whether a value of this kind can be written as one text value (a path segment, a query
/// parameter): scalars, enums, wrappers and the string well-known types.
pub fn is_textual(kind: &Kind) -> bool {
    match kind {
        Kind::Message(m) => is_scalar_wrapper(m) || is_string_wkt(m),
        _ => true,
    }
}

/// The kind a wrapper wraps, or the kind itself.
pub fn unwrapped(kind: &Kind) -> Kind {
    match kind {
        Kind::Message(m) if is_scalar_wrapper(m) => {
            m.get_field_by_name("value").expect("wrappers have a value field").kind()
        }
        other => other.clone(),
    }
}
