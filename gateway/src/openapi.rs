//! The OpenAPI 3.1 document of the routes the gateway serves, generated from the same bindings
//! (and the protos' comments), so the document cannot disagree with the routes.
//!
//! Request and response schemas follow the proto3 JSON mapping the gateway speaks: lowerCamelCase
//! names, 64-bit integers as strings, enums by name, bytes as base64, well-known types in their
//! JSON forms. Every operation lists the errors the gateway itself can produce for it and a
//! `default` google.rpc.Status response for whatever the backend answers.

use crate::rules::{Binding, BodySpec, CallKind};
use crate::template::Segment;
use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the document says about the API as a whole.
#[derive(Debug, Clone)]
pub struct ApiInfo {
    pub title: String,
    pub version: String,
    pub description: String,
    /// The base URL clients are pointed at.
    pub server: String,
}

const STATUS: &str = "google.rpc.Status";

/// Leading comments by (file, source path), the way descriptors locate their comments.
struct Comments(HashMap<(String, Vec<i32>), String>);

impl Comments {
    fn new(pool: &DescriptorPool) -> Self {
        let mut map = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else { continue };
            for loc in &info.location {
                if let Some(c) = loc.leading_comments.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                    let text = c.lines().map(str::trim).collect::<Vec<_>>().join("\n");
                    map.insert((file.name().to_owned(), loc.path.clone()), text);
                }
            }
        }
        Comments(map)
    }

    fn get(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.0.get(&(file.to_owned(), path.to_vec())).map(String::as_str)
    }

    fn message(&self, m: &MessageDescriptor) -> Option<&str> {
        self.get(m.parent_file().name(), m.path())
    }

    fn field(&self, f: &FieldDescriptor) -> Option<&str> {
        self.get(f.parent_file().name(), f.path())
    }

    fn enumeration(&self, e: &EnumDescriptor) -> Option<&str> {
        self.get(e.parent_file().name(), e.path())
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn with_description(mut schema: Value, description: Option<&str>) -> Value {
    // OpenAPI 3.1 allows siblings of $ref, so a field's own description sits beside it.
    if let (Some(d), Some(obj)) = (description, schema.as_object_mut()) {
        obj.insert("description".into(), Value::String(d.to_owned()));
    }
    schema
}

/// `google.api.FieldBehavior` values the document uses.
const REQUIRED: i32 = 2;
const OUTPUT_ONLY: i32 = 3;

/// The field annotations the document reads: `google.api.field_behavior` and grpc-gateway's
/// `openapiv2_field` (a JSON Schema for the field), when the descriptors define them.
struct Annotations {
    behavior: Option<prost_reflect::ExtensionDescriptor>,
    schema: Option<prost_reflect::ExtensionDescriptor>,
}

impl Annotations {
    fn new(pool: &DescriptorPool) -> Self {
        Annotations {
            behavior: pool.get_extension_by_name("google.api.field_behavior"),
            schema: pool.get_extension_by_name("grpc.gateway.protoc_gen_openapiv2.options.openapiv2_field"),
        }
    }

    fn behavior(&self, f: &FieldDescriptor) -> Vec<i32> {
        let (Some(ext), options) = (&self.behavior, f.options()) else { return Vec::new() };
        if !options.has_extension(ext) {
            return Vec::new();
        }
        match options.get_extension(ext).as_ref() {
            prost_reflect::Value::List(items) => items.iter().filter_map(|v| v.as_enum_number()).collect(),
            prost_reflect::Value::EnumNumber(n) => vec![*n],
            _ => Vec::new(),
        }
    }

    /// The field's JSON Schema annotation, as the keywords it sets.
    fn constraints(&self, f: &FieldDescriptor) -> Option<Map<String, Value>> {
        let ext = self.schema.as_ref()?;
        let options = f.options();
        if !options.has_extension(ext) {
            return None;
        }
        let value = options.get_extension(ext);
        let msg = value.as_message()?;
        let mut out = Map::new();
        for (field, v) in msg.fields() {
            let keyword = match field.name() {
                "title" | "description" | "pattern" | "format" => field.name().to_owned(),
                "default" | "example" => field.name().to_owned(),
                "read_only" => "readOnly".into(),
                "multiple_of" => "multipleOf".into(),
                "maximum" | "minimum" => field.name().to_owned(),
                "exclusive_maximum" => "exclusiveMaximum".into(),
                "exclusive_minimum" => "exclusiveMinimum".into(),
                "max_length" => "maxLength".into(),
                "min_length" => "minLength".into(),
                "max_items" => "maxItems".into(),
                "min_items" => "minItems".into(),
                "unique_items" => "uniqueItems".into(),
                "enum" => "enum".into(),
                _ => continue,
            };
            let json = match v {
                prost_reflect::Value::String(s) if matches!(keyword.as_str(), "default" | "example") => {
                    serde_json::from_str(s).unwrap_or_else(|_| json!(s))
                }
                prost_reflect::Value::String(s) => json!(s),
                prost_reflect::Value::Bool(b) => json!(b),
                prost_reflect::Value::F64(n) => json!(n),
                prost_reflect::Value::U64(n) => json!(n),
                prost_reflect::Value::List(items) => {
                    Value::Array(items.iter().filter_map(|i| i.as_str().map(|s| json!(s))).collect())
                }
                _ => continue,
            };
            out.insert(keyword, json);
        }
        // OpenAPI 3.1 (JSON Schema 2020-12) gives the exclusive bounds as numbers.
        for (flag, bound) in [("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")] {
            if out.remove(flag) == Some(json!(true))
                && let Some(n) = out.remove(bound)
            {
                out.insert(flag.into(), n);
            }
        }
        Some(out)
    }
}

/// A number schema that also admits the strings NaN, Infinity and -Infinity.
fn non_finite_too(number: Value) -> Value {
    json!({"anyOf": [number, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})
}

/// Adds a keyword to a schema (beside a `$ref` too, which OpenAPI 3.1 allows).
fn with_keyword(mut schema: Value, key: &str, value: Value) -> Value {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(key.into(), value);
    }
    schema
}

/// Applies a field's annotated JSON Schema keywords. Numeric bounds apply to the number itself:
/// a bounded float admits no NaN or infinities, so its schema becomes the plain number.
fn constrained(schema: Value, rules: &Map<String, Value>) -> Value {
    let numeric = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];
    let mut schema = match schema {
        Value::Object(mut obj) if rules.keys().any(|k| numeric.contains(&k.as_str())) => {
            // The `anyOf` of a float: keep only its number alternative.
            if let Some(Value::Array(alts)) = obj.remove("anyOf")
                && let Some(Value::Object(number)) = alts.into_iter().next()
            {
                obj.extend(number);
            }
            Value::Object(obj)
        }
        other => other,
    };
    let Some(obj) = schema.as_object_mut() else { return schema };
    let list = obj.contains_key("items");
    for (k, v) in rules {
        // On a list, the rules of its length stay on the list; the rest are each item's.
        let on_list = matches!(k.as_str(), "minItems" | "maxItems" | "uniqueItems" | "description" | "title");
        match obj.get_mut("items") {
            Some(Value::Object(items)) if list && !on_list => {
                items.insert(k.clone(), v.clone());
            }
            _ => {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    schema
}

/// Builds schemas, remembering which named ones the document needs.
struct Schemas<'a> {
    comments: &'a Comments,
    annotations: Annotations,
    /// Building request schemas (path, query, body) rather than response ones.
    input: bool,
    /// Messages known to carry request rules, or not.
    ruled: HashMap<String, bool>,
    needed: BTreeSet<String>,
    built: BTreeMap<String, Value>,
}

impl<'a> Schemas<'a> {
    /// The JSON schema of one value of a field's kind (no repetition).
    fn kind(&mut self, kind: &Kind) -> Value {
        match kind {
            // NaN and the infinities travel as strings.
            Kind::Double => non_finite_too(json!({"type": "number", "format": "double"})),
            Kind::Float => non_finite_too(json!({"type": "number", "format": "float"})),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({"type": "integer", "format": "int32"}),
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "uint32", "minimum": 0, "maximum": u32::MAX})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"})
            }
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte", "contentEncoding": "base64"}),
            Kind::Enum(e) => {
                self.need_enum(e);
                schema_ref(e.full_name())
            }
            Kind::Message(m) => self.message_ref(m),
        }
    }

    fn message_ref(&mut self, m: &MessageDescriptor) -> Value {
        match m.full_name() {
            "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
            "google.protobuf.Duration" => {
                json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$", "examples": ["1.5s"]})
            }
            "google.protobuf.FieldMask" => {
                json!({"type": "string", "description": "Comma-separated lowerCamelCase field paths."})
            }
            "google.protobuf.Empty" => json!({"type": "object", "maxProperties": 0}),
            "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
            "google.protobuf.Value" => json!({}),
            "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
            "google.protobuf.Any" => json!({
                "type": "object",
                "properties": {"@type": {"type": "string"}},
                "required": ["@type"],
                "additionalProperties": true
            }),
            _ if crate::descriptor::is_scalar_wrapper(m) => {
                // Wrappers are the plain value (null, in a request, for "not set").
                let inner = m.get_field_by_name("value").expect("wrappers have a value");
                json!({"anyOf": [self.kind(&inner.kind()), {"type": "null"}]})
            }
            _ => {
                let name = self.name_of(m);
                self.need_message(m);
                schema_ref(&name)
            }
        }
    }

    /// The schema of a whole field: repetition and maps included.
    fn field(&mut self, f: &FieldDescriptor) -> Value {
        let schema = if f.is_map() {
            let Kind::Message(entry) = f.kind() else { unreachable!("maps are messages") };
            let value = self.kind(&entry.map_entry_value_field().kind());
            json!({"type": "object", "additionalProperties": value})
        } else if f.is_list() {
            json!({"type": "array", "items": self.kind(&f.kind())})
        } else {
            self.kind(&f.kind())
        };
        let schema = with_description(schema, self.comments.field(f));
        // Rules bind what clients send; a response may hold anything the message can.
        match self.annotations.constraints(f).filter(|_| self.input) {
            Some(rules) => constrained(schema, &rules),
            None => schema,
        }
    }

    fn need_enum(&mut self, e: &EnumDescriptor) {
        if !self.needed.insert(e.full_name().to_owned()) {
            return;
        }
        let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
        // Enums are open: a number this version does not name passes through as a number.
        let mut s = json!({"anyOf": [
            {"type": "string", "enum": names},
            {"type": "integer", "format": "int32", "description": "A value without a name in this version of the API."}
        ]});
        s = with_description(s, self.comments.enumeration(e));
        self.built.insert(e.full_name().to_owned(), s);
    }

    /// The component name of a message's schema: requests get a schema of their own
    /// (`<name>.Input`) when the message carries rules that only requests must follow.
    fn name_of(&mut self, m: &MessageDescriptor) -> String {
        if self.input && self.has_rules(m) { format!("{}.Input", m.full_name()) } else { m.full_name().to_owned() }
    }

    /// Whether a message (or one it contains) has required fields or annotated constraints.
    fn has_rules(&mut self, m: &MessageDescriptor) -> bool {
        if let Some(known) = self.ruled.get(m.full_name()) {
            return *known;
        }
        // Cycles resolve to "no" until proven otherwise.
        self.ruled.insert(m.full_name().to_owned(), false);
        let mut found = false;
        for f in m.fields() {
            if self.annotations.behavior(&f).contains(&REQUIRED) || self.annotations.constraints(&f).is_some() {
                found = true;
            } else if let Kind::Message(inner) = f.kind()
                && !crate::descriptor::is_special_wkt(&inner)
            {
                let inner =
                    if f.is_map() { inner.map_entry_value_field().kind().as_message().cloned() } else { Some(inner) };
                found = inner.is_some_and(|i| self.has_rules(&i));
            }
            if found {
                break;
            }
        }
        self.ruled.insert(m.full_name().to_owned(), found);
        found
    }

    fn need_message(&mut self, m: &MessageDescriptor) {
        let name = self.name_of(m);
        if !self.needed.insert(name.clone()) {
            return;
        }
        let mut props = Map::new();
        let mut oneofs: Vec<Vec<String>> = Vec::new();
        for oneof in m.oneofs().filter(|o| !o.is_synthetic()) {
            oneofs.push(oneof.fields().map(|f| f.json_name().to_owned()).collect());
        }
        let mut required = Vec::new();
        for f in m.fields() {
            let mut schema = self.field(&f);
            let behavior = self.annotations.behavior(&f);
            if behavior.contains(&OUTPUT_ONLY) {
                schema = with_keyword(schema, "readOnly", json!(true));
            }
            if behavior.contains(&REQUIRED) && self.input {
                required.push(f.json_name().to_owned());
            }
            props.insert(f.json_name().to_owned(), schema);
        }
        let mut s = json!({"type": "object", "properties": props});
        if !required.is_empty() {
            s["required"] = json!(required);
        }
        if let Some(d) = self.comments.message(m) {
            s["description"] = json!(d);
        }
        if let [members] = oneofs.as_slice() {
            s["oneOf"] = one_of(members);
        } else if !oneofs.is_empty() {
            s["allOf"] = Value::Array(oneofs.iter().map(|o| json!({"oneOf": one_of(o)})).collect());
        }
        self.built.insert(name, s);
    }
}

/// At most one member of a oneof is present: one alternative per member, plus "none".
fn one_of(members: &[String]) -> Value {
    let mut alts: Vec<Value> = members.iter().map(|m| json!({"required": [m]})).collect();
    let any: Vec<Value> = members.iter().map(|m| json!({"required": [m]})).collect();
    alts.push(json!({"not": {"anyOf": any}}));
    Value::Array(alts)
}

/// The OpenAPI path of a template: variables become `{field.path}` parameters.
pub fn openapi_path(b: &Binding) -> String {
    let t = &b.template;
    let mut out = String::new();
    let mut i = 0;
    while i < t.segments.len() {
        out.push('/');
        if let Some(v) = t.variables.iter().find(|v| v.start == i) {
            out.push_str(&format!("{{{}}}", v.field()));
            i = v.end.max(i + 1);
        } else {
            match &t.segments[i] {
                Segment::Literal(l) => out.push_str(l),
                Segment::Any => out.push('*'),
                Segment::Rest => out.push_str("**"),
            }
            i += 1;
        }
    }
    if let Some(verb) = &t.verb {
        out.push(':');
        out.push_str(verb);
    }
    out
}

/// Whether a field can be set from the query string: textual values, maps of them, and the
/// fields of ordinary messages (flattened to `a.b`).
fn queryable(f: &FieldDescriptor) -> bool {
    match f.kind() {
        Kind::Message(m) => {
            f.is_map() || crate::descriptor::is_textual(&f.kind()) || !crate::descriptor::is_special_wkt(&m)
        }
        _ => true,
    }
}

/// Query parameters for the fields of `msg` (nested messages flattened to `a.b`), named in
/// lowerCamelCase as the JSON mapping spells them; `prefix` is the proto path so far and
/// `json_prefix` its JSON spelling.
fn query_params(
    schemas: &mut Schemas<'_>,
    msg: &MessageDescriptor,
    (prefix, json_prefix): (&str, &str),
    skip: &[String],
    depth: usize,
    out: &mut Vec<Value>,
) {
    for f in msg.fields() {
        let proto_path = if prefix.is_empty() { f.name().to_owned() } else { format!("{prefix}.{}", f.name()) };
        if skip.iter().any(|s| *s == proto_path || proto_path.starts_with(&format!("{s}."))) || !queryable(&f) {
            continue;
        }
        let json_path =
            if json_prefix.is_empty() { f.json_name().to_owned() } else { format!("{json_prefix}.{}", f.json_name()) };
        match f.kind() {
            Kind::Message(_)
                if let Some(m) = crate::descriptor::plain_message(&f.kind(), f.is_map() || f.is_list()) =>
            {
                // Bounded, since messages may nest recursively.
                if depth < 3 {
                    query_params(schemas, &m, (&proto_path, &json_path), skip, depth + 1, out);
                }
            }
            Kind::Message(m) if f.is_list() && !m.full_name().starts_with("google.protobuf.") => {}
            _ => {
                let mut schema = schemas.field(&f);
                // The description goes on the parameter, once.
                if let Some(obj) = schema.as_object_mut() {
                    obj.remove("description");
                }
                let mut p = json!({
                    "name": json_path,
                    "in": "query",
                    "required": false,
                    "schema": schema,
                });
                if f.is_map() {
                    p["style"] = json!("deepObject");
                    p["explode"] = json!(true);
                } else if f.is_list() {
                    p["style"] = json!("form");
                    p["explode"] = json!(true);
                }
                if let Some(d) = schemas.comments.field(&f) {
                    p["description"] = json!(d);
                }
                out.push(p);
            }
        }
    }
}

fn status_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref(STATUS)}}
    })
}

fn operation(schemas: &mut Schemas<'_>, b: &Binding, op_id: String) -> Value {
    let method = &b.method;
    let input = method.input();
    let output = method.output();
    let service = method.parent_service();
    let mut op = Map::new();
    op.insert("tags".into(), json!([service.full_name()]));
    op.insert("operationId".into(), json!(op_id));
    let comment = schemas.comments.get(method.parent_file().name(), method.path()).map(str::to_owned);
    let mut description = comment.clone().unwrap_or_default();
    op.insert("summary".into(), json!(format!("{} ({})", method.name(), method.full_name())));

    // Parameters: the path variables, then the query string.
    schemas.input = true;
    let mut params = Vec::new();
    for (var, chain) in b.template.variables.iter().zip(&b.path_fields) {
        let field = chain.last().expect("non-empty chain");
        let mut schema = schemas.kind(&field.kind());
        let pattern = &b.template.segments[var.start..var.end];
        let mut d = schemas.comments.field(field).unwrap_or("").to_owned();
        if pattern != [Segment::Any] {
            let text: Vec<String> = pattern
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => l.clone(),
                    Segment::Any => "*".into(),
                    Segment::Rest => "**".into(),
                })
                .collect();
            d = format!("{d}\n\nMatches the path pattern `{}` (it may contain `/`).", text.join("/")).trim().to_owned();
            schema = json!({"type": "string"});
        }
        let mut p = json!({"name": var.field(), "in": "path", "required": true, "schema": schema});
        if !d.is_empty() {
            p["description"] = json!(d);
        }
        params.push(p);
    }
    let streams_in = matches!(b.kind, CallKind::ClientStreaming | CallKind::Bidi);
    let query_binds = streams_in || !matches!(b.body, BodySpec::Whole);
    if query_binds {
        let mut skip: Vec<String> =
            b.path_fields.iter().map(|c| c.iter().map(|f| f.name()).collect::<Vec<_>>().join(".")).collect();
        if let BodySpec::Field(f) = &b.body {
            skip.push(f.name().to_owned());
        }
        // A raw upload fills these from the body, not from the query.
        if let Some(raw) = &b.raw
            && b.kind == CallKind::ClientStreaming
        {
            skip.push(raw.bytes_field.name().to_owned());
            if let Some(c) = &raw.counter_field {
                skip.push(c.name().to_owned());
            }
        }
        query_params(schemas, &input, ("", ""), &skip, 0, &mut params);
    }
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }

    // The request body.
    let body_schema = match &b.body {
        BodySpec::None => schemas.message_ref(&input),
        BodySpec::Whole => schemas.message_ref(&input),
        BodySpec::Field(f) => schemas.field(f),
    };
    let has_body = match b.kind {
        CallKind::Unary | CallKind::ServerStreaming => !matches!(b.body, BodySpec::None),
        CallKind::ClientStreaming => true,
        CallKind::Bidi => false,
    };
    if has_body {
        let mut content = Map::new();
        match b.kind {
            CallKind::ClientStreaming => {
                content.insert(
                    "application/x-ndjson".into(),
                    json!({"schema": body_schema, "x-switchyard-stream": "one JSON message per line"}),
                );
                if let Some(raw) = &b.raw {
                    content.insert(
                        "application/octet-stream".into(),
                        json!({"schema": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}}),
                    );
                    description.push_str(&format!(
                        "\n\nClient stream: an NDJSON body, one message per line, read as it arrives; or a raw body (`Content-Type: application/octet-stream`) cut into messages whose `{}` carries the bytes{}.",
                        raw.bytes_field.name(),
                        raw.counter_field.as_ref().map(|c| format!(" and `{}` numbers them from 0", c.name())).unwrap_or_default()
                    ));
                } else {
                    description
                        .push_str("\n\nClient stream: an NDJSON body, one message per line, read as it arrives.");
                }
            }
            _ => {
                content.insert("application/json".into(), json!({"schema": body_schema}));
            }
        }
        op.insert("requestBody".into(), json!({"required": false, "content": content}));
    }

    // Responses.
    let inbound = (b.kind == CallKind::Bidi).then(|| schemas.message_ref(&input));
    schemas.input = false;
    let out_schema = match &b.response_body {
        Some(f) => schemas.field(f),
        None => schemas.message_ref(&output),
    };
    let mut responses = Map::new();
    match b.kind {
        CallKind::Unary | CallKind::ClientStreaming => {
            responses.insert(
                "200".into(),
                json!({"description": "OK", "content": {"application/json": {"schema": out_schema}}}),
            );
        }
        CallKind::ServerStreaming => {
            let mut content = Map::new();
            content.insert(
                "application/x-ndjson".into(),
                json!({"schema": {
                    "type": "object",
                    "description": "One line per message; a failure midway ends the stream with an error line.",
                    "properties": {"result": out_schema, "error": schema_ref(STATUS)}
                }}),
            );
            content.insert(
                "text/event-stream".into(),
                json!({"schema": {"type": "string", "description": "Server-Sent Events: `data: <message JSON>` per event; `event: error` with a google.rpc.Status on failure."}}),
            );
            if let Some(raw) = &b.raw {
                content.insert(
                    "application/octet-stream".into(),
                    json!({"schema": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}}),
                );
                description.push_str(&format!(
                    "\n\nWith `Accept: application/octet-stream`, the response is the `{}` bytes of the messages back to back.",
                    raw.bytes_field.name()
                ));
            }
            description.push_str("\n\nServer stream: NDJSON by default, Server-Sent Events with `Accept: text/event-stream`; messages are written as they arrive.");
            responses.insert("200".into(), json!({"description": "A stream of messages", "content": content}));
        }
        CallKind::Bidi => {
            description.push_str(
                "\n\nBidirectional stream over WebSocket: upgrade this GET, then exchange one JSON message per text frame each way. The socket closes with 1000 when the call succeeds, or sends `{\"error\": <google.rpc.Status>}` and closes with 1011 when it fails.",
            );
            responses.insert("101".into(), json!({"description": "Switching Protocols (WebSocket)"}));
            op.insert("x-switchyard-websocket".into(), json!({"inbound": inbound, "outbound": out_schema}));
        }
    }
    responses.insert(
        "400".into(),
        status_response(
            "A malformed request: bad JSON, or a path or query value that does not fit its field (INVALID_ARGUMENT).",
        ),
    );
    if !b.template.variables.is_empty() {
        responses.insert("404".into(), status_response("Not found (NOT_FOUND)."));
    }
    responses.insert(
        "401".into(),
        status_response("No valid credentials, when the backend requires them (UNAUTHENTICATED)."),
    );
    responses
        .insert("403".into(), status_response("The credentials lack a role the method needs (PERMISSION_DENIED)."));
    responses.insert(
        "429".into(),
        status_response("Too many requests, or a per-client quota ran out (RESOURCE_EXHAUSTED)."),
    );
    responses.insert("431".into(), status_response("The request headers are over the size limit."));
    if has_body {
        responses.insert("408".into(), status_response("The request body stopped arriving (DEADLINE_EXCEEDED)."));
        responses.insert(
            "413".into(),
            status_response("The request body (or one streamed message) is over the size limit."),
        );
        responses.insert("415".into(), status_response("The request body's media type is not supported."));
    }
    responses.insert("503".into(), status_response("The backend is unavailable (UNAVAILABLE)."));
    responses.insert("504".into(), status_response("The deadline passed (DEADLINE_EXCEEDED)."));
    responses.insert("default".into(), status_response("Any other error, as a google.rpc.Status."));
    op.insert("responses".into(), Value::Object(responses));
    let description = description.trim().to_owned();
    if !description.is_empty() {
        op.insert("description".into(), json!(description));
    }
    Value::Object(op)
}

/// The whole document.
pub fn document<'b>(pool: &DescriptorPool, bindings: impl IntoIterator<Item = &'b Binding>, info: &ApiInfo) -> Value {
    let comments = Comments::new(pool);
    let mut schemas = Schemas {
        comments: &comments,
        annotations: Annotations::new(pool),
        input: false,
        ruled: HashMap::new(),
        needed: BTreeSet::new(),
        built: BTreeMap::new(),
    };
    let mut sorted: Vec<&Binding> = bindings.into_iter().collect();
    let order = |m: &http::Method| {
        ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH"].iter().position(|x| *x == m.as_str()).unwrap_or(9)
    };
    sorted.sort_by_key(|b| (openapi_path(b), order(&b.http_method)));

    // Operation ids: Service_Method, then Service_Method2, 3, ... for additional bindings, in
    // declaration order as grpc-gateway numbers them.
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<(String, String), String> = HashMap::new();
    let mut by_decl: Vec<&Binding> = sorted.clone();
    by_decl.sort_by_key(|b| b.method.full_name().to_owned());
    for b in &by_decl {
        let base = format!("{}_{}", b.method.parent_service().name(), b.method.name());
        let n = counts.entry(base.clone()).or_insert(0);
        *n += 1;
        let id = if *n == 1 { base } else { format!("{base}{n}") };
        ids.insert((openapi_path(b), b.http_method.to_string()), id);
    }

    let mut paths = Map::new();
    for b in &sorted {
        let key = openapi_path(b);
        let id = ids[&(key.clone(), b.http_method.to_string())].clone();
        let mut op = operation(&mut schemas, b, id);
        let links = links_from(b, &sorted, &ids);
        if !links.is_empty()
            && let Some(ok) = op.pointer_mut("/responses/200")
        {
            ok["links"] = Value::Object(links);
        }
        let entry = paths.entry(key).or_insert_with(|| Value::Object(Map::new()));
        entry[b.http_method.as_str().to_ascii_lowercase()] = op;
    }
    if let Some(status) = pool.get_message_by_name(STATUS) {
        schemas.need_message(&status);
    }

    let mut tags: BTreeMap<String, Value> = BTreeMap::new();
    for b in &sorted {
        let s = b.method.parent_service();
        tags.entry(s.full_name().to_owned()).or_insert_with(|| {
            let mut t = json!({"name": s.full_name()});
            if let Some(d) = comments.get(s.parent_file().name(), s.path()) {
                t["description"] = json!(d);
            }
            t
        });
    }

    json!({
        "openapi": "3.1.0",
        "info": {"title": info.title, "version": info.version, "description": info.description},
        "servers": [{"url": info.server}],
        "tags": tags.into_values().collect::<Vec<_>>(),
        "paths": paths,
        // A bearer token when the backend requires one (it may not: the scheme is optional).
        "security": [{}, {"bearerAuth": []}],
        "components": {
            "schemas": schemas.built,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "A token of the backend's token file, or a JWT."}},
        },
    })
}

/// The OpenAPI links from what a POST creates to the operations that address it, so a client
/// (or a stateful test) can follow a created resource: a path variable `x_id` is fed by the
/// response's field `x_id`, or by `id` when the response is the message `X`.
fn links_from(b: &Binding, all: &[&Binding], ids: &HashMap<(String, String), String>) -> Map<String, Value> {
    let mut links = Map::new();
    if b.http_method != http::Method::POST || !matches!(b.kind, CallKind::Unary | CallKind::ClientStreaming) {
        return links;
    }
    let created = match &b.response_body {
        Some(f) => match f.kind() {
            Kind::Message(m) => m,
            _ => return links,
        },
        None => b.method.output(),
    };
    let own_id = format!("{}_id", snake(created.name()));
    let source = |var: &str| -> Option<String> {
        if let Some(f) = created.get_field_by_name(var) {
            return Some(f.json_name().to_owned());
        }
        (var == own_id).then(|| created.get_field_by_name("id").map(|f| f.json_name().to_owned())).flatten()
    };
    for t in all {
        if t.template.variables.is_empty() || matches!(t.kind, CallKind::Bidi) {
            continue;
        }
        let mut parameters = Map::new();
        for var in &t.template.variables {
            let Some(from) = (var.field_path.len() == 1).then(|| source(&var.field_path[0])).flatten() else {
                break;
            };
            parameters.insert(var.field(), json!(format!("$response.body#/{from}")));
        }
        if parameters.len() == t.template.variables.len() {
            let id = &ids[&(openapi_path(t), t.http_method.to_string())];
            links.insert(id.clone(), json!({"operationId": id, "parameters": parameters}));
        }
    }
    links
}

/// `OrderItem` -> `order_item`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The document as YAML.
pub fn to_yaml(doc: &Value) -> String {
    yaml_serde::to_string(doc).expect("a JSON value always prints as YAML")
}
