//! Builds the request message's JSON from the three places a REST request carries it — path
//! variables, the query string and the body — using the descriptor to turn each textual value
//! into the JSON its field takes. The JSON then goes through the one mapping ([`crate::json`]),
//! so a value means the same in a path, a query and a body: ranges, formats and enum names are
//! checked there, once.
//!
//! Precedence follows grpc-gateway: path variables override the body, the query fills only the
//! fields that neither the path nor the body binds, and unknown query parameters are ignored
//! (they may be meant for a proxy or a cache).

use crate::descriptor::{is_scalar_wrapper, is_string_wkt, unwrapped};
use crate::error::GatewayError;
use crate::json::JsonError;
use crate::rules::{Binding, BodySpec};
use crate::template::Captures;
use http::Method;
use percent_encoding::percent_decode;
use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

type Object = Map<String, Value>;

fn bad(msg: impl Into<String>) -> GatewayError {
    GatewayError::BadRequest(msg.into())
}

/// A bad value of one field, named by its JSON path.
fn invalid(field: &str, description: impl Into<String>) -> GatewayError {
    GatewayError::InvalidMessage(JsonError { field: field.to_owned(), description: description.into() })
}

/// Finds a field by its proto name or its JSON name (both are accepted in requests).
pub fn field_by_any_name(msg: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    msg.get_field_by_name(name).or_else(|| msg.get_field_by_json_name(name))
}

/// Converts one textual value (from the path or the query) into the JSON its field takes: text
/// that is a JSON number becomes one for numeric fields (so `1e2` means 100, as in a body), the
/// rest stays a string (`NaN`, a 64-bit integer) — the mapping checks ranges and formats;
/// booleans and enum numbers become JSON literals; a message other than a wrapper or a string
/// well-known type has no textual form.
pub fn text_to_json(kind: &Kind, text: &str) -> Result<Value, String> {
    match unwrapped(kind) {
        Kind::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{text:?} is not a boolean (true or false)")),
        },
        Kind::Enum(_) => Ok(text.parse::<i32>().map(Value::from).unwrap_or_else(|_| Value::String(text.to_owned()))),
        Kind::Message(m) if is_string_wkt(&m) => Ok(Value::String(text.to_owned())),
        Kind::Message(m) => {
            Err(format!("is a {} message; bind its fields one by one (field.subfield=value)", m.full_name()))
        }
        Kind::String | Kind::Bytes => Ok(Value::String(text.to_owned())),
        // An integer stays text, which the mapping parses exactly (as a JSON number it would
        // become a float, and lose range checks beyond 2^53); `1e2` or `1.0` becomes a number.
        _ if text.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) => Ok(Value::String(text.to_owned())),
        _ => Ok(serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(text.to_owned()))),
    }
}

/// Sets a value at a field chain, creating intermediate objects and replacing whatever the
/// body had there under either spelling of the name.
fn set_at(obj: &mut Object, chain: &[FieldDescriptor], value: Value) {
    let (last, parents) = chain.split_last().expect("non-empty field chain");
    let mut cur = obj;
    for f in parents {
        if f.name() != f.json_name() {
            cur.remove(f.name());
        }
        let slot = cur.entry(f.json_name().to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        cur = slot.as_object_mut().expect("just made an object");
    }
    cur.remove(last.name());
    cur.insert(last.json_name().to_owned(), value);
}

/// One query parameter's key: a field path and, for maps, the entry key (`labels[env]=prod`).
fn parse_query_key(key: &str) -> Option<(Vec<&str>, Option<&str>)> {
    let (path, map_key) = match key.find('[') {
        Some(i) if key.ends_with(']') => (&key[..i], Some(&key[i + 1..key.len() - 1])),
        Some(_) => return None,
        None => (key, None),
    };
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some((parts, map_key))
}

/// Decodes `application/x-www-form-urlencoded` pairs, refusing invalid UTF-8 rather than
/// replacing it (a silently changed value is lost data).
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, GatewayError> {
    let decode = |s: &str| -> Result<String, GatewayError> {
        let plus = s.replace('+', " ");
        percent_decode(plus.as_bytes())
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad(format!("query parameter {s:?} is not valid UTF-8")))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Binds query parameters onto `obj` for the fields of `msg`; `skip` says which field chains
/// (by proto names) are bound elsewhere and must not be touched.
pub fn bind_query(
    obj: &mut Object,
    msg: &MessageDescriptor,
    query: &str,
    skip: &[Vec<String>],
) -> Result<(), GatewayError> {
    let mut seen: Vec<Vec<String>> = Vec::new();
    for (key, text) in query_pairs(query)? {
        let Some((parts, map_key)) = parse_query_key(&key) else {
            continue;
        };
        // Resolve the chain; an unknown name means the parameter is not for us.
        let mut chain = Vec::with_capacity(parts.len());
        let mut cur = msg.clone();
        let mut known = true;
        for (i, p) in parts.iter().enumerate() {
            let Some(f) = field_by_any_name(&cur, p) else {
                known = false;
                break;
            };
            if i + 1 < parts.len() {
                match f.kind() {
                    Kind::Message(m) if !f.is_list() && !f.is_map() && !is_scalar_wrapper(&m) && !is_string_wkt(&m) => {
                        cur = m
                    }
                    _ => {
                        return Err(bad(format!("query parameter {key:?}: {p:?} has no subfields")));
                    }
                }
            }
            chain.push(f);
        }
        if !known {
            continue;
        }
        let names: Vec<String> = chain.iter().map(|f| f.name().to_owned()).collect();
        if skip.iter().any(|s| names.starts_with(s)) {
            continue;
        }
        let field = chain.last().expect("non-empty");
        let json_path = chain_json(&chain);
        let err = |m: String| invalid(&json_path, format!("query parameter {key:?}: {m}"));
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!("maps are messages") };
            let map_key = map_key.ok_or_else(|| err("a map needs a key: name[key]=value".into()))?;
            let key_field = entry.map_entry_key_field();
            text_to_json(&key_field.kind(), map_key).map_err(|m| err(format!("map key {m}")))?;
            let value = text_to_json(&entry.map_entry_value_field().kind(), &text).map_err(err)?;
            match lookup_mut(obj, &chain) {
                Some(Value::Object(m)) => {
                    m.insert(map_key.to_owned(), value);
                }
                _ => set_at(obj, &chain, Value::Object(Map::from_iter([(map_key.to_owned(), value)]))),
            }
            continue;
        }
        if map_key.is_some() {
            return Err(err("is not a map".into()));
        }
        let value = text_to_json(&field.kind(), &text).map_err(err)?;
        if field.cardinality() == Cardinality::Repeated {
            match lookup_mut(obj, &chain) {
                Some(Value::Array(a)) => a.push(value),
                _ => set_at(obj, &chain, Value::Array(vec![value])),
            }
        } else {
            if seen.contains(&names) {
                return Err(err("is not repeated but was given more than once".into()));
            }
            seen.push(names);
            set_at(obj, &chain, value);
        }
    }
    Ok(())
}

fn lookup_mut<'a>(obj: &'a mut Object, chain: &[FieldDescriptor]) -> Option<&'a mut Value> {
    let (last, parents) = chain.split_last()?;
    let mut cur = obj;
    for f in parents {
        cur = cur.get_mut(f.json_name())?.as_object_mut()?;
    }
    cur.get_mut(last.json_name())
}

/// grpc-gateway's PATCH rule: when the body carries no update mask, the mask is the set of fields
/// present in the body (nested objects give nested paths), in lowerCamelCase JSON form.
fn infer_update_mask(msg: &MessageDescriptor, body: &Object, exclude: &str) -> Vec<String> {
    fn walk(msg: &MessageDescriptor, obj: &Object, prefix: &str, exclude: &str, out: &mut Vec<String>) {
        for (key, value) in obj {
            let Some(f) = field_by_any_name(msg, key) else {
                continue;
            };
            if prefix.is_empty() && f.name() == exclude {
                continue;
            }
            let path = if prefix.is_empty() { f.json_name().to_owned() } else { format!("{prefix}.{}", f.json_name()) };
            match (f.kind(), value) {
                (Kind::Message(m), Value::Object(inner))
                    if !f.is_list()
                        && !f.is_map()
                        && !is_string_wkt(&m)
                        && !is_scalar_wrapper(&m)
                        && !m.full_name().starts_with("google.protobuf.")
                        && !inner.is_empty() =>
                {
                    walk(&m, inner, &path, exclude, out)
                }
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    walk(msg, body, "", exclude, &mut out);
    out
}

/// The `update_mask` field the PATCH rule fills, if the message has one.
fn update_mask_field(msg: &MessageDescriptor) -> Option<FieldDescriptor> {
    msg.get_field_by_name("update_mask")
        .filter(|f| matches!(f.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask"))
}

/// Assembles the request JSON for one call.
pub fn build_request(
    binding: &Binding,
    captures: Captures,
    query: Option<&str>,
    body: Option<Value>,
) -> Result<Value, GatewayError> {
    let input = binding.method.input();
    let mut obj = Object::new();
    // The query may not touch what the path or the body binds (worked out once per binding);
    // an inferred update mask joins them.
    let mut mask_skip: Option<Vec<Vec<String>>> = None;
    match (&binding.body, body) {
        (BodySpec::None, _) => {}
        (BodySpec::Whole, body) => {
            obj = match body {
                None => Object::new(),
                Some(Value::Object(o)) => o,
                Some(Value::Null) => return Err(bad("the request body must be a JSON object, not null")),
                Some(_) => return Err(bad("the request body must be a JSON object")),
            };
            if binding.http_method == Method::PATCH
                && let Some(mask) = update_mask_field(&input)
                && !obj.contains_key(mask.name())
                && !obj.contains_key(mask.json_name())
            {
                let mut paths = infer_update_mask(&input, &obj, mask.name());
                // Path variables override the body, so they are not updates.
                let bound: Vec<&str> = binding.path_fields.iter().map(|c| c[0].json_name()).collect();
                paths.retain(|p| !bound.contains(&p.as_str()));
                obj.insert(mask.json_name().to_owned(), Value::String(paths.join(",")));
            }
        }
        (BodySpec::Field(field), body) => {
            if let Some(value) = body.filter(|v| !v.is_null()) {
                if binding.http_method == Method::PATCH
                    && let (Some(mask), Kind::Message(m), Value::Object(o)) =
                        (update_mask_field(&input), field.kind(), &value)
                {
                    let paths = infer_update_mask(&m, o, "");
                    obj.insert(mask.json_name().to_owned(), Value::String(paths.join(",")));
                    let mut skip = binding.query_skip.clone();
                    skip.push(vec![mask.name().to_owned()]);
                    mask_skip = Some(skip);
                }
                obj.insert(field.json_name().to_owned(), value);
            }
        }
    }
    for ((_, text), chain) in captures.into_iter().zip(&binding.path_fields) {
        let last = chain.last().expect("non-empty");
        let value = text_to_json(&last.kind(), &text)
            .map_err(|m| invalid(&chain_json(chain), format!("path parameter {:?}: {m}", chain_name(chain))))?;
        set_at(&mut obj, chain, value);
    }
    if let (Some(q), false) = (query, matches!(binding.body, BodySpec::Whole)) {
        bind_query(&mut obj, &input, q, mask_skip.as_deref().unwrap_or(&binding.query_skip))?;
    }
    Ok(Value::Object(obj))
}

/// The path and query values of a streaming call, which every streamed message carries (see
/// `wire::StreamContext`). The query may fill any field the path and the body field do not.
pub fn url_values(binding: &Binding, captures: Captures, query: Option<&str>) -> Result<Value, GatewayError> {
    let mut obj = Object::new();
    for ((_, text), chain) in captures.into_iter().zip(&binding.path_fields) {
        let last = chain.last().expect("non-empty");
        let value = text_to_json(&last.kind(), &text)
            .map_err(|m| invalid(&chain_json(chain), format!("path parameter {:?}: {m}", chain_name(chain))))?;
        set_at(&mut obj, chain, value);
    }
    if let Some(q) = query {
        bind_query(&mut obj, &binding.method.input(), q, &binding.query_skip)?;
    }
    Ok(Value::Object(obj))
}

fn chain_name(chain: &[FieldDescriptor]) -> String {
    chain.iter().map(|f| f.name()).collect::<Vec<_>>().join(".")
}

/// A field chain as a JSON path (`user.createdAt`), as errors name fields.
fn chain_json(chain: &[FieldDescriptor]) -> String {
    chain.iter().map(|f| f.json_name()).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::load_bindings;
    use prost_reflect::DescriptorPool;
    use serde_json::json;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    fn binding(method: &str, template: &str) -> Binding {
        load_bindings(&pool())
            .unwrap()
            .into_iter()
            .find(|b| b.http_method.as_str() == method && b.template.to_string() == template)
            .unwrap()
    }

    fn captures(pairs: &[(&str, &str)]) -> Captures {
        pairs.iter().map(|(f, v)| (vec![f.to_string()].into(), v.to_string())).collect()
    }

    #[test]
    fn path_overrides_body_under_either_spelling() {
        let b = binding("PATCH", "/api/v1/users/{user_id}");
        let v = build_request(&b, captures(&[("user_id", "u1")]), None, Some(json!({"user_id": "evil", "name": "N"})))
            .unwrap();
        assert_eq!(v["userId"], "u1");
        assert!(v.get("user_id").is_none());
    }

    #[test]
    fn patch_without_mask_infers_it_from_the_body() {
        let b = binding("PATCH", "/api/v1/users/{user_id}");
        let v =
            build_request(&b, captures(&[("user_id", "u1")]), None, Some(json!({"name": "N", "age": 0, "junk": 1})))
                .unwrap();
        let mut paths: Vec<&str> = v["updateMask"].as_str().unwrap().split(',').collect();
        paths.sort();
        assert_eq!(paths, ["age", "name"]);
        let v =
            build_request(&b, captures(&[("user_id", "u1")]), None, Some(json!({"name": "N", "updateMask": "email"})))
                .unwrap();
        assert_eq!(v["updateMask"], "email");
    }

    /// The request message the gateway would send, printed canonically.
    fn message(b: &Binding, caps: Captures, query: Option<&str>, body: Option<Value>) -> Result<Value, GatewayError> {
        let v = build_request(b, caps, query, body)?;
        let msg = crate::json::from_value(&b.method.input(), v).map_err(GatewayError::InvalidMessage)?;
        Ok(serde_json::from_slice(&crate::json::print_message(&msg).unwrap()).unwrap())
    }

    #[test]
    fn query_binds_typed_values_with_both_spellings() {
        let b = binding("GET", "/api/v1/users");
        let v = message(&b, vec![], Some("page_size=5&pageToken=abc&unknown=1"), None).unwrap();
        assert_eq!(v, json!({"pageSize": 5, "pageToken": "abc"}));
        for q in ["page_size=x", "page_size=1&page_size=2", "pageSize=99999999999", "page_token=%FF", "pageSize=1.5"] {
            assert!(message(&b, vec![], Some(q), None).is_err(), "{q}");
        }
        // The same text means the same in a query as in a body: 1e2 is the integer 100.
        assert_eq!(message(&b, vec![], Some("pageSize=1e2"), None).unwrap()["pageSize"], 100);
    }

    #[test]
    fn query_binds_every_scalar_and_well_known_type() {
        let b = binding("GET", "/api/v1/types/scalars");
        let q = "doubleField=1.5&float_field=NaN&int32Field=-3&int64Field=-9000000000&uint32Field=4\
                 &uint64Field=18446744073709551615&sint32Field=-1&sint64Field=-2&fixed32Field=3\
                 &fixed64Field=4&boolField=true&stringField=a+b%21&bytesField=aGk";
        let v = message(&b, vec![], Some(q), None).unwrap();
        assert_eq!(v["doubleField"], 1.5);
        assert_eq!(v["floatField"], "NaN");
        assert_eq!(v["int64Field"], "-9000000000");
        assert_eq!(v["uint64Field"], "18446744073709551615");
        assert_eq!(v["stringField"], "a b!");
        assert_eq!(v["bytesField"], "aGk=");
        assert_eq!(v["boolField"], true);
        let e = binding("GET", "/api/v1/types/events/{id}");
        let v = message(
            &e,
            captures(&[("id", "e1")]),
            Some("createdAt=2024-01-01T00:00:00Z&duration=1.5s&name=n&count=7&id=ignored"),
            None,
        )
        .unwrap();
        assert_eq!(
            (&v["id"], &v["createdAt"], &v["duration"]),
            (&json!("e1"), &json!("2024-01-01T00:00:00Z"), &json!("1.500s"))
        );
        assert_eq!((&v["name"], &v["count"]), (&json!("n"), &json!(7)));
        assert!(message(&e, captures(&[("id", "e1")]), Some("status=1"), None).is_err());
        assert!(message(&e, captures(&[("id", "e1")]), Some("createdAt=yesterday"), None).is_err());
    }

    #[test]
    fn nested_repeated_enum_and_map_query_values() {
        let b = binding("PUT", "/api/v1/types/responses/user");
        // The body field "user" is not bound from the query; other fields would be.
        let v = build_request(&b, vec![], Some("user.name=x"), Some(json!({"name": "body"}))).unwrap();
        assert_eq!(v, json!({"user": {"name": "body"}}));
        let user = pool().get_message_by_name("user.v1.User").unwrap();
        let bound = |q: &str| -> Result<Value, GatewayError> {
            let mut obj = Object::new();
            bind_query(&mut obj, &user, q, &[])?;
            let msg = crate::json::from_value(&user, Value::Object(obj)).map_err(GatewayError::InvalidMessage)?;
            Ok(serde_json::from_slice(&crate::json::print_message(&msg).unwrap()).unwrap())
        };
        let v = bound("roles=a&roles=b&status=2&metadata[k]=v&created_at.timestamp=5").unwrap();
        assert_eq!(v["roles"], json!(["a", "b"]));
        assert_eq!(v["status"], json!("USER_STATUS_INACTIVE"));
        assert_eq!(v["metadata"], json!({"k": "v"}));
        assert_eq!(v["createdAt"]["timestamp"], json!("5"));
        // Open enums: an unknown number passes through; an unknown name leaves the field unset.
        assert_eq!(bound("status=99").unwrap()["status"], json!(99));
        assert_eq!(bound("status=NOPE").unwrap()["status"], json!("USER_STATUS_UNSPECIFIED"));
        for q in ["metadata=x", "name[k]=v", "roles.x=1", "age=old"] {
            assert!(bound(q).is_err(), "{q}");
        }
    }

    #[test]
    fn body_must_be_an_object_for_star() {
        let b = binding("POST", "/api/v1/users");
        assert!(build_request(&b, vec![], None, Some(json!([1]))).is_err());
        assert_eq!(build_request(&b, vec![], None, None).unwrap(), json!({}));
    }
}
