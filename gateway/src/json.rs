//! The one proto3 JSON mapping, both ways, for every message the gateway handles: unary bodies
//! and responses, each NDJSON line and SSE event, each WebSocket frame, and path and query
//! values. Messages are known from descriptors only (prost-reflect's serde support, which runs
//! the protobuf conformance suite), so a service loaded at run time maps exactly like a
//! compiled-in one.
//!
//! What prost-reflect leaves to its caller is done here: a field given twice (the same spelling
//! twice, or its proto name and its JSON name) is refused; a float string that overflows is
//! refused; unknown fields inside `Empty` are ignored; NaN and the infinities in float wrappers
//! print as strings; and errors name the field they are about (`items[0].price`), so a 400 can
//! carry google.rpc.BadRequest field violations.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Why a JSON message does not fit its descriptor: the offending field (as a JSON path, empty
/// for the whole message) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub field: String,
    pub description: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.description)
        } else {
            write!(f, "{}: {}", self.field, self.description)
        }
    }
}

impl JsonError {
    fn whole(description: impl Into<String>) -> Self {
        JsonError { field: String::new(), description: description.into() }
    }
}

/// Unknown fields are ignored (as grpc-gateway does), which also leaves an unknown enum name
/// unset rather than refusing it.
const PARSE: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(false);
/// Canonical output: lowerCamelCase names, 64-bit integers as strings, enums by name, fields
/// without presence printed even when they hold their default (a stable shape for clients);
/// unset message and `optional` fields are left out.
pub(crate) const PRINT: SerializeOptions = SerializeOptions::new().skip_default_fields(false);

/// Parses JSON text into a JSON value, refusing duplicate keys in any object.
pub fn parse_value(text: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = Strict::deserialize(&mut de).map_err(|e| JsonError::whole(format!("invalid JSON: {e}")))?;
    de.end().map_err(|e| JsonError::whole(format!("invalid JSON: {e}")))?;
    Ok(value.0)
}

/// Parses one JSON message (a body, a line, a frame) into `desc`.
pub fn parse_message(desc: &MessageDescriptor, text: &[u8]) -> Result<DynamicMessage, JsonError> {
    let value = parse_value(text)?;
    if !value.is_object() {
        return Err(JsonError::whole(format!("expected a JSON object for {}, got {}", desc.name(), kind_of(&value))));
    }
    from_value(desc, value)
}

/// Turns a JSON value (already free of duplicate keys) into `desc`.
pub fn from_value(desc: &MessageDescriptor, mut value: Value) -> Result<DynamicMessage, JsonError> {
    prepare(desc, &mut value, &mut String::new())?;
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    DynamicMessage::deserialize_with_options(desc.clone(), de, &PARSE).map_err(|e| {
        let path = track.path().to_string();
        JsonError { field: if path == "." { String::new() } else { path }, description: e.to_string() }
    })
}

/// Encodes a JSON message (already free of duplicate keys) for the wire.
///
/// The most common request — ids from the path, `{"userId": "…"}` — is written directly: a
/// message given only string fields needs none of the mapping's conversions or checks, and
/// building a `DynamicMessage` for it cost more than the rest of the request's encoding.
/// Everything else goes through [`from_value`].
pub fn encode_value(desc: &MessageDescriptor, value: Value) -> Result<Vec<u8>, JsonError> {
    if let Some(wire) = strings_only(desc, &value) {
        return Ok(wire);
    }
    from_value(desc, value).map(|msg| prost::Message::encode_to_vec(&msg))
}

/// The wire form of `value` if it sets only string fields of `desc`, each once.
fn strings_only(desc: &MessageDescriptor, value: &Value) -> Option<Vec<u8>> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let Value::Object(obj) = value else { return None };
    if crate::descriptor::is_special_wkt(desc) {
        return None;
    }
    let mut fields: Vec<(FieldDescriptor, &str)> = Vec::with_capacity(obj.len());
    for (key, v) in obj {
        let field = desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key))?;
        let (Value::String(text), Kind::String) = (v, field.kind()) else { return None };
        let in_oneof = field.containing_oneof().is_some_and(|o| !o.is_synthetic());
        if field.is_list() || in_oneof || fields.iter().any(|(f, _)| f.number() == field.number()) {
            return None;
        }
        fields.push((field, text));
    }
    fields.sort_by_key(|(f, _)| f.number());
    let mut wire = Vec::with_capacity(fields.iter().map(|(_, t)| t.len() + 6).sum());
    for (field, text) in fields {
        // Proto3 leaves a default out unless the field tracks presence.
        if text.is_empty() && !field.supports_presence() {
            continue;
        }
        encode_key(field.number(), WireType::LengthDelimited, &mut wire);
        encode_varint(text.len() as u64, &mut wire);
        wire.extend_from_slice(text.as_bytes());
    }
    Some(wire)
}

/// Prints a message canonically.
pub fn print_message(msg: &DynamicMessage) -> Result<Vec<u8>, String> {
    if has_float_wrappers(&msg.descriptor()) {
        let mut value = msg.serialize_with_options(serde_json::value::Serializer, &PRINT).map_err(|e| e.to_string())?;
        fix_float_wrappers(msg, &mut value);
        return serde_json::to_vec(&value).map_err(|e| e.to_string());
    }
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::new(&mut out);
    msg.serialize_with_options(&mut ser, &PRINT).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Prints a message of `plan`'s type from the wire canonically, or only its field `json_field`
/// (a `response_body`).
pub fn print_wire(plan: &crate::wire_json::Plan, wire: &[u8], json_field: Option<&str>) -> Result<Vec<u8>, String> {
    if let Ok(printed) = plan.print(wire, json_field) {
        return Ok(printed);
    }
    let msg = DynamicMessage::decode(plan.descriptor().clone(), wire)
        .map_err(|e| format!("undecodable response message: {e}"))?;
    match json_field {
        None => print_message(&msg),
        Some(name) => {
            let mut msg = msg;
            // An unset field prints as its default (`{}` for a message), never as `null`.
            if let Some(field) = msg.descriptor().get_field_by_json_name(name)
                && !msg.has_field(&field)
            {
                msg.set_field(&field, prost_reflect::Value::default_value_for_field(&field));
            }
            let mut whole: Value =
                msg.serialize_with_options(serde_json::value::Serializer, &PRINT).map_err(|e| e.to_string())?;
            if has_float_wrappers(&msg.descriptor()) {
                fix_float_wrappers(&msg, &mut whole);
            }
            let part = whole.get_mut(name).map(Value::take).unwrap_or(Value::Null);
            serde_json::to_vec(&part).map_err(|e| e.to_string())
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Readies a JSON value for prost-reflect, doing what the mapping requires and prost-reflect
/// leaves out: a field given under both its names (`user_id` and `userId`) is refused; a
/// float given as a string that overflows is refused (rather than becoming Infinity); unknown
/// fields inside `google.protobuf.Empty` are dropped like unknown fields anywhere else.
fn prepare(desc: &MessageDescriptor, value: &mut Value, path: &mut String) -> Result<(), JsonError> {
    let Value::Object(obj) = value else { return Ok(()) };
    match desc.full_name() {
        "google.protobuf.Empty" => {
            obj.clear();
            return Ok(());
        }
        _ if crate::descriptor::is_special_wkt(desc) => return Ok(()),
        _ => {}
    }
    let mut seen: Vec<u32> = Vec::with_capacity(obj.len());
    for (key, v) in obj.iter_mut() {
        let Some(field) = desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key)) else {
            continue;
        };
        if seen.contains(&field.number()) {
            let name = join(path, field.json_name());
            return Err(JsonError { field: name, description: "the field is given twice".into() });
        }
        seen.push(field.number());
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(field.json_name());
        let result = prepare_field(&field, v, path);
        path.truncate(len);
        result?;
    }
    Ok(())
}

fn prepare_field(field: &FieldDescriptor, v: &mut Value, path: &mut String) -> Result<(), JsonError> {
    let kind = field.kind();
    if field.is_map() {
        let value_kind = kind.as_message().expect("maps are messages").map_entry_value_field().kind();
        if let Value::Object(entries) = v {
            for item in entries.values_mut() {
                prepare_value(&value_kind, item, path)?;
            }
        }
        return Ok(());
    }
    if field.is_list() {
        if let Value::Array(items) = v {
            for item in items {
                prepare_value(&kind, item, path)?;
            }
        }
        return Ok(());
    }
    prepare_value(&kind, v, path)
}

fn prepare_value(kind: &Kind, v: &mut Value, path: &mut String) -> Result<(), JsonError> {
    match (crate::descriptor::unwrapped(kind), &*v) {
        (Kind::Double | Kind::Float, Value::String(s)) => {
            let overflows = !matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity")
                && s.trim().parse::<f64>().is_ok_and(|f| f.is_infinite());
            if overflows {
                return Err(JsonError { field: path.clone(), description: format!("{s} is out of range") });
            }
            Ok(())
        }
        (_, Value::Object(_)) => match kind {
            Kind::Message(m) => prepare(m, v, path),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether messages of `desc` can hold a FloatValue or DoubleValue wrapper (at any depth),
/// whose NaN and infinities prost-reflect prints as `null`. Not cached: responses are printed by
/// [`crate::wire_json`], and only the few it leaves to this path walk the descriptor.
fn has_float_wrappers(desc: &MessageDescriptor) -> bool {
    fn walk(desc: &MessageDescriptor, seen: &mut Vec<String>) -> bool {
        if seen.iter().any(|s| s == desc.full_name()) {
            return false;
        }
        seen.push(desc.full_name().to_owned());
        desc.fields().any(|f| match f.kind() {
            Kind::Message(m)
                if matches!(m.full_name(), "google.protobuf.FloatValue" | "google.protobuf.DoubleValue") =>
            {
                true
            }
            Kind::Message(m) => walk(&m, seen),
            _ => false,
        })
    }
    walk(desc, &mut Vec::new())
}

/// Writes the non-finite values of float wrappers in `msg` into its printed form as the
/// strings the mapping requires.
fn fix_float_wrappers(msg: &DynamicMessage, printed: &mut Value) {
    for (field, value) in msg.fields() {
        let Some(slot) = printed.get_mut(field.json_name()) else { continue };
        fix_value(&field.kind(), value, slot);
    }
}

fn fix_value(kind: &Kind, value: &prost_reflect::Value, slot: &mut Value) {
    use prost_reflect::Value as V;
    match value {
        V::List(items) => {
            if let Value::Array(out) = slot {
                for (item, s) in items.iter().zip(out.iter_mut()) {
                    fix_value(kind, item, s);
                }
            }
        }
        V::Map(entries) => {
            let Kind::Message(entry) = kind else { return };
            let value_kind = entry.map_entry_value_field().kind();
            if let Value::Object(out) = slot {
                for (k, item) in entries {
                    let key = match k {
                        prost_reflect::MapKey::String(s) => s.clone(),
                        other => map_key_text(other),
                    };
                    if let Some(s) = out.get_mut(&key) {
                        fix_value(&value_kind, item, s);
                    }
                }
            }
        }
        V::Message(m) => match m.descriptor().full_name() {
            "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => {
                let f = match m.get_field_by_name("value").as_deref() {
                    Some(V::F32(f)) => f64::from(*f),
                    Some(V::F64(f)) => *f,
                    _ => return,
                };
                if !f.is_finite() {
                    let text = if f.is_nan() {
                        "NaN"
                    } else if f > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    };
                    *slot = Value::String(text.into());
                }
            }
            _ => fix_float_wrappers(m, slot),
        },
        _ => {}
    }
}

fn map_key_text(k: &prost_reflect::MapKey) -> String {
    use prost_reflect::MapKey as K;
    match k {
        K::Bool(b) => b.to_string(),
        K::I32(n) => n.to_string(),
        K::I64(n) => n.to_string(),
        K::U32(n) => n.to_string(),
        K::U64(n) => n.to_string(),
        K::String(s) => s.clone(),
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

/// A JSON value whose objects have no duplicate keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v).map(|n| Strict(Value::Number(n))).ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format!("the field {key:?} is given twice")));
            }
            let Strict(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Strict(Value::Object(obj)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;
    use serde_json::json;

    #[test]
    fn string_only_messages_encode_as_the_mapping_does() {
        let pool = DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap();
        let user = pool.get_message_by_name("user.v1.User").unwrap();
        let general = |v: Value| prost::Message::encode_to_vec(&from_value(&user, v).unwrap());
        for v in [
            json!({}),
            json!({"id": "u1"}),
            json!({"email": "a@b.c", "id": "u1", "name": ""}),
            json!({"name": "✓ \"q\""}),
        ] {
            assert!(strings_only(&user, &v).is_some(), "{v}");
            assert_eq!(encode_value(&user, v.clone()).unwrap(), general(v.clone()), "{v}");
        }
        // Anything else takes the mapping: other kinds, a field named twice, unknown names.
        for v in [json!({"age": 3}), json!({"nope": "x"}), json!({"id": 1})] {
            assert!(strings_only(&user, &v).is_none(), "{v}");
        }
        assert!(encode_value(&user, json!({"age": "x"})).is_err());
        let get = pool.get_message_by_name("user.v1.GetUserRequest").unwrap();
        let twice = json!({"user_id": "a", "userId": "b"});
        assert!(strings_only(&get, &twice).is_none());
        assert_eq!(encode_value(&get, twice).unwrap_err().description, "the field is given twice");
    }
}
