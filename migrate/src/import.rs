//! `switchyard import OPENAPI_FILE --package NAME --out DIR`: starter `.proto` files from the
//! legacy API's OpenAPI document (3.1, or 3.0), read with the `oas3` crate.
//!
//! One service per tag (or per first path segment when an operation has no tag); one RPC per
//! operation with a `google.api.http` binding that keeps its method and path (path parameters
//! become `{field}` variables, query parameters request fields, the body a field bound with
//! `body: "<field>"` or the whole request with `body: "*"`); messages from schemas (`$ref`, nested
//! objects, arrays, string enums with an UNSPECIFIED zero, integer formats to int32/int64,
//! `date-time` to Timestamp, nullable scalars to `optional`, `oneOf` of messages to a oneof).
//! JSON property names are kept with `json_name` where the proto name would print otherwise, so
//! the gateway answers old clients in the names they know. What cannot be expressed is kept as a
//! comment where it occurs and listed in the report.

use oas3::Spec;
use oas3::spec::{
    ObjectOrReference, ObjectSchema, Operation, ParameterIn, Schema, SchemaType as Type, SchemaTypeSet as TypeSet,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What an import produced.
#[derive(Debug)]
pub struct Imported {
    /// The `.proto` file written.
    pub file: PathBuf,
    /// Its path below the output folder (to pass as `--proto` with `--proto-path DIR`).
    pub import_path: String,
    /// Services and RPCs written.
    pub services: usize,
    pub rpcs: usize,
    /// What could not be expressed, with where.
    pub notes: Vec<String>,
}

/// Why a document cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: not an OpenAPI 3 document: {1}")]
    Parse(PathBuf, String),
    #[error("invalid --package {0:?}: use dotted lowercase names like petstore.v1")]
    Package(String),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// Reads `openapi`, writes `<out>/<package path>/<last package part>.proto`.
pub fn import(openapi: &Path, package: &str, out: &Path) -> Result<Imported, ImportError> {
    if package.is_empty()
        || !package
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
    {
        return Err(ImportError::Package(package.to_owned()));
    }
    let text = std::fs::read_to_string(openapi).map_err(|e| ImportError::Read(openapi.to_owned(), e))?;
    let spec = parse(&text).map_err(|e| ImportError::Parse(openapi.to_owned(), e))?;
    let mut writer = Writer::new(&spec, package);
    writer.run();
    let dir: PathBuf = package.split('.').collect();
    // `petstore.v3` -> petstore/v3/petstore.proto: named after the last part that is no version.
    let is_version = |p: &str| {
        p.starts_with('v')
            && p[1..].chars().all(|c| c.is_ascii_digit() || c.is_ascii_alphabetic())
            && p[1..].starts_with(|c: char| c.is_ascii_digit())
    };
    let stem = package.split('.').rev().find(|p| !is_version(p)).unwrap_or(package);
    let name = format!("{stem}.proto");
    let import_path = format!("{}/{name}", dir.to_string_lossy().replace('\\', "/"));
    let file = out.join(&dir).join(&name);
    std::fs::create_dir_all(file.parent().expect("a file has a parent"))
        .map_err(|e| ImportError::Write(file.clone(), e))?;
    std::fs::write(&file, writer.finish()).map_err(|e| ImportError::Write(file.clone(), e))?;
    Ok(Imported { file, import_path, services: writer.services.len(), rpcs: writer.rpc_count, notes: writer.notes })
}

/// Parses YAML or JSON; 3.0's `nullable: true` becomes 3.1's `type: [T, "null"]` first (the
/// crate reads the 3.1 form).
fn parse(text: &str) -> Result<Spec, String> {
    let mut value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => yaml_serde::from_str(text).map_err(|e| e.to_string())?,
    };
    let version = value.get("openapi").and_then(Value::as_str).unwrap_or("").to_owned();
    if !version.starts_with('3') {
        return Err(format!("openapi version {version:?} (3.0 and 3.1 are read)"));
    }
    if version.starts_with("3.0") {
        nullable_to_type_lists(&mut value);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn nullable_to_type_lists(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if obj.remove("nullable") == Some(Value::Bool(true))
                && let Some(Value::String(t)) = obj.get("type").cloned()
            {
                obj.insert("type".into(), serde_json::json!([t, "null"]));
            }
            for child in obj.values_mut() {
                nullable_to_type_lists(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_type_lists),
        _ => {}
    }
}

/// `pet-store_api` -> `PetStoreApi`.
fn pascal(s: &str) -> String {
    let mut out = String::new();
    let mut up = true;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if up {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            up = false;
        } else {
            up = true;
        }
    }
    if out.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        out.insert(0, 'X');
    }
    if out.is_empty() { "Unnamed".into() } else { out }
}

/// `petId`, `pet-id` -> `pet_id`.
fn snake(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let out = out.trim_matches('_').to_owned();
    match out.chars().next() {
        None => "field".into(),
        Some(c) if c.is_ascii_digit() => format!("f_{out}"),
        _ => out,
    }
}

/// The JSON name protoc gives a field name (lowerCamelCase).
fn default_json_name(field: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in field.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `UPPER_SNAKE` for enum value names.
fn upper(s: &str) -> String {
    let s = snake(s).to_ascii_uppercase();
    if s.is_empty() { "VALUE".into() } else { s }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}// {}", line.trim_end());
    }
}

struct Writer<'a> {
    spec: &'a Spec,
    package: String,
    /// Messages and enums by name, as text.
    types: BTreeMap<String, String>,
    /// Names taken, so generated names stay unique.
    taken: BTreeSet<String>,
    /// Services by name: their RPCs, as text.
    services: BTreeMap<String, Vec<String>>,
    imports: BTreeSet<&'static str>,
    notes: Vec<String>,
    rpc_count: usize,
    /// The first server's base path (`/api/v3`), which clients put before every path.
    base: String,
    /// Component schemas that become a message or an enum; references to the others take the
    /// referenced schema's own field type.
    typed: BTreeSet<String>,
}

/// A field's type, as proto text.
struct FieldType {
    label: &'static str,
    ty: String,
    /// Something the field could not express.
    note: Option<String>,
}

impl<'a> Writer<'a> {
    fn new(spec: &'a Spec, package: &str) -> Self {
        Writer {
            spec,
            package: package.to_owned(),
            types: BTreeMap::new(),
            taken: BTreeSet::new(),
            services: BTreeMap::new(),
            imports: BTreeSet::from(["google/api/annotations.proto"]),
            notes: Vec::new(),
            rpc_count: 0,
            base: base_path(spec),
            typed: BTreeSet::new(),
        }
    }

    /// A schema with `anyOf` and nothing else (an open enum, a float that may be "NaN", a
    /// nullable value) taken as its first alternative that is not `null`.
    fn simplified(&self, obj: ObjectSchema) -> (ObjectSchema, bool) {
        if obj.any_of.is_empty() || obj.schema_type.is_some() || !obj.properties.is_empty() {
            return (obj, false);
        }
        let mut nullable = false;
        let mut chosen = None;
        for alt in &obj.any_of {
            if let Ok(Schema::Object(o)) = alt.resolve(self.spec)
                && let ObjectOrReference::Object(o) = *o
            {
                if o.schema_type == Some(TypeSet::Single(Type::Null)) {
                    nullable = true;
                } else if chosen.is_none() {
                    chosen = Some(o);
                }
            }
        }
        match chosen {
            Some(mut c) => {
                if c.description.is_none() {
                    c.description = obj.description.clone();
                }
                (c, nullable)
            }
            None => (obj, nullable),
        }
    }

    fn unique(&mut self, base: String) -> String {
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    fn run(&mut self) {
        // Component schemas first, under their own names.
        if let Some(components) = &self.spec.components {
            for (name, schema) in components.schemas.iter() {
                self.taken.insert(pascal(name));
                if let Ok(Schema::Object(o)) = schema.resolve(self.spec)
                    && let ObjectOrReference::Object(o) = *o
                {
                    let (o, _) = self.simplified(o);
                    if !o.enum_values.is_empty()
                        || is_object(&o)
                        || !o.properties.is_empty()
                        || !o.one_of.is_empty()
                        || !o.all_of.is_empty()
                    {
                        self.typed.insert(pascal(name));
                    }
                }
            }
            for (name, schema) in components.schemas.iter() {
                let schema = schema.clone();
                self.named_type(&pascal(name), &schema, &format!("#/components/schemas/{name}"));
            }
        }
        let paths: Vec<(String, oas3::spec::PathItem)> = self
            .spec
            .paths
            .as_ref()
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (path, item) in paths {
            let ops = [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
                ("head", &item.head),
                ("options", &item.options),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    self.rpc(&path, method, op, &item.parameters);
                }
            }
        }
    }

    /// Writes a named message or enum for a schema (objects and string enums); other schemas
    /// need no type of their own.
    fn named_type(&mut self, name: &str, schema: &Schema, at: &str) {
        let Ok(resolved) = schema.resolve(self.spec) else {
            self.notes.push(format!("{at}: unresolvable $ref; left out"));
            return;
        };
        let Schema::Object(obj) = resolved else { return };
        let ObjectOrReference::Object(obj) = *obj else { return };
        let (obj, _) = self.simplified(obj);
        if !obj.enum_values.is_empty() {
            self.enumeration(name, &obj);
        } else if is_object(&obj) || !obj.properties.is_empty() || !obj.one_of.is_empty() || !obj.all_of.is_empty() {
            self.message(name, &obj, at);
        }
    }

    fn enumeration(&mut self, name: &str, obj: &ObjectSchema) {
        let prefix = upper(name);
        let mut text = String::new();
        if let Some(d) = &obj.description {
            comment(&mut text, "", d);
        }
        let _ = writeln!(text, "enum {name} {{");
        let _ = writeln!(text, "  {prefix}_UNSPECIFIED = 0;");
        let mut seen = BTreeSet::new();
        for (i, v) in obj.enum_values.iter().enumerate() {
            let label = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut value = format!("{prefix}_{}", upper(&label));
            while !seen.insert(value.clone()) {
                value.push('_');
            }
            let _ = writeln!(text, "  // {label}");
            let _ = writeln!(text, "  {value} = {};", i + 1);
        }
        text.push_str("}\n");
        self.types.insert(name.to_owned(), text);
    }

    fn message(&mut self, name: &str, obj: &ObjectSchema, at: &str) {
        let mut body = String::new();
        let mut number = 1;
        let mut props: Vec<(String, Schema)> = obj.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for part in &obj.all_of {
            // allOf: the properties of each part, merged.
            if let Ok(Schema::Object(o)) = part.resolve(self.spec)
                && let ObjectOrReference::Object(o) = *o
            {
                props.extend(o.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        for (prop, schema) in &props {
            self.field(&mut body, name, prop, schema, &mut number, &format!("{at}/properties/{prop}"));
        }
        if !obj.one_of.is_empty() {
            self.oneof(&mut body, name, obj, &mut number, at);
        }
        let mut text = String::new();
        if let Some(d) = &obj.description {
            comment(&mut text, "", d);
        }
        let _ = writeln!(text, "message {name} {{");
        text.push_str(&body);
        text.push_str("}\n");
        self.types.insert(name.to_owned(), text);
    }

    /// `oneOf` of object schemas becomes a oneof of messages; anything else a comment.
    fn oneof(&mut self, body: &mut String, parent: &str, obj: &ObjectSchema, number: &mut u32, at: &str) {
        let mut members = Vec::new();
        for (i, alt) in obj.one_of.iter().enumerate() {
            let ty = match alt {
                Schema::Object(o) => match o.as_ref() {
                    ObjectOrReference::Ref { ref_path, .. } => ref_name(ref_path),
                    ObjectOrReference::Object(inline) if is_object(inline) => {
                        let name = self.unique(format!("{parent}Option{}", i + 1));
                        self.message(&name, inline, &format!("{at}/oneOf/{i}"));
                        Some(name)
                    }
                    // A constraint on the object's own properties (`{required: [a]}`), not an
                    // alternative type: nothing to write.
                    ObjectOrReference::Object(inline)
                        if inline.schema_type.is_none() && inline.properties.is_empty() =>
                    {
                        continue;
                    }
                    _ => None,
                },
                _ => None,
            };
            match ty {
                Some(t) => members.push(t),
                None => {
                    let note = format!("{at}/oneOf/{i}: only object alternatives map to a oneof; this one is left out");
                    comment(body, "  ", &note);
                    self.notes.push(note);
                }
            }
        }
        if members.is_empty() {
            return;
        }
        body.push_str("  oneof kind {\n");
        for m in members {
            let _ = writeln!(body, "    {m} {} = {number};", snake(&m));
            *number += 1;
        }
        body.push_str("  }\n");
    }

    fn field(&mut self, body: &mut String, parent: &str, prop: &str, schema: &Schema, number: &mut u32, at: &str) {
        let name = snake(prop);
        let ft = self.field_type(parent, prop, schema, at);
        if let Ok(Schema::Object(o)) = schema.resolve(self.spec)
            && let ObjectOrReference::Object(o) = *o
            && let Some(d) = &o.description
        {
            comment(body, "  ", d);
        }
        if let Some(note) = &ft.note {
            comment(body, "  ", note);
            self.notes.push(note.clone());
        }
        let json = if default_json_name(&name) == prop {
            String::new()
        } else {
            format!(" [json_name = \"{}\"]", escape(prop))
        };
        let _ = writeln!(body, "  {}{} {name} = {number}{json};", ft.label, ft.ty);
        *number += 1;
    }

    /// The proto type of a schema used as a field.
    fn field_type(&mut self, parent: &str, prop: &str, schema: &Schema, at: &str) -> FieldType {
        let plain = |ty: &str| FieldType { label: "", ty: ty.to_owned(), note: None };
        let obj = match schema {
            Schema::Boolean(_) => {
                return plain("google.protobuf.Value").with_import(self, "google/protobuf/struct.proto");
            }
            Schema::Object(o) => match o.as_ref() {
                ObjectOrReference::Ref { ref_path, .. } => {
                    return match ref_name(ref_path) {
                        Some(name) if self.typed.contains(&name) => plain(&name),
                        // A component that is no message or enum (a string with a format, an
                        // array): the field takes its type.
                        Some(_) => match schema.resolve(self.spec) {
                            Ok(resolved @ Schema::Object(_)) => self.field_type(parent, prop, &resolved, at),
                            _ => plain("google.protobuf.Value").with_import(self, "google/protobuf/struct.proto"),
                        },
                        None => FieldType {
                            label: "",
                            ty: "google.protobuf.Value".into(),
                            note: Some(format!(
                                "{at}: $ref {ref_path} is not a component schema; kept as any JSON value"
                            )),
                        }
                        .with_import(self, "google/protobuf/struct.proto"),
                    };
                }
                ObjectOrReference::Object(o) => o.clone(),
            },
        };
        let (obj, any_null) = self.simplified(obj);
        let nullable = any_null || obj.is_nullable() == Some(true);
        let types: Vec<Type> = match &obj.schema_type {
            None => Vec::new(),
            Some(TypeSet::Single(t)) => vec![*t],
            Some(TypeSet::Multiple(ts)) => ts.iter().copied().filter(|t| *t != Type::Null).collect(),
        };
        let optional = |mut ft: FieldType| {
            if nullable && ft.label.is_empty() && is_scalar(&ft.ty) {
                ft.label = "optional ";
            }
            ft
        };
        if !obj.enum_values.is_empty() && types.iter().all(|t| *t == Type::String) {
            let name = self.unique(format!("{parent}{}", pascal(prop)));
            self.enumeration(&name, &obj);
            return plain(&name);
        }
        match types.as_slice() {
            [Type::String] => optional(match obj.format.as_deref() {
                Some("date-time") => {
                    plain("google.protobuf.Timestamp").with_import(self, "google/protobuf/timestamp.proto")
                }
                Some("byte" | "binary") => plain("bytes"),
                _ => plain("string"),
            }),
            [Type::Integer] => optional(match obj.format.as_deref() {
                Some("int64") => plain("int64"),
                Some("uint64") => plain("uint64"),
                Some("uint32") => plain("uint32"),
                _ => plain("int32"),
            }),
            [Type::Number] => optional(match obj.format.as_deref() {
                Some("float") => plain("float"),
                _ => plain("double"),
            }),
            [Type::Boolean] => optional(plain("bool")),
            [Type::Array] => {
                let Some(items) = &obj.items else {
                    return FieldType { label: "repeated ", ty: "google.protobuf.Value".into(), note: None }
                        .with_import(self, "google/protobuf/struct.proto");
                };
                let inner = self.field_type(parent, prop, items, &format!("{at}/items"));
                if inner.label.contains("repeated") || inner.ty.starts_with("map<") {
                    return FieldType {
                        label: "",
                        ty: "google.protobuf.ListValue".into(),
                        note: Some(format!("{at}: an array of arrays or maps has no proto field; kept as a JSON list")),
                    }
                    .with_import(self, "google/protobuf/struct.proto");
                }
                FieldType { label: "repeated ", ty: inner.ty, note: inner.note }
            }
            [Type::Object] | [] if !obj.properties.is_empty() || !obj.all_of.is_empty() || !obj.one_of.is_empty() => {
                let name = self.unique(format!("{parent}{}", pascal(prop)));
                self.message(&name, &obj, at);
                plain(&name)
            }
            [Type::Object] | [] => match &obj.additional_properties {
                Some(Schema::Object(_)) => {
                    let value = self.field_type(
                        parent,
                        &format!("{prop}Value"),
                        obj.additional_properties.as_ref().expect("checked"),
                        &format!("{at}/additionalProperties"),
                    );
                    if value.label.is_empty() && !value.ty.starts_with("map<") {
                        FieldType { label: "", ty: format!("map<string, {}>", value.ty), note: value.note }
                    } else {
                        FieldType {
                            label: "",
                            ty: "google.protobuf.Struct".into(),
                            note: Some(format!(
                                "{at}: a map of lists or maps has no proto field; kept as a JSON object"
                            )),
                        }
                        .with_import(self, "google/protobuf/struct.proto")
                    }
                }
                _ if types.is_empty() && obj.properties.is_empty() => {
                    plain("google.protobuf.Value").with_import(self, "google/protobuf/struct.proto")
                }
                _ => plain("google.protobuf.Struct").with_import(self, "google/protobuf/struct.proto"),
            },
            _ => FieldType {
                label: "",
                ty: "google.protobuf.Value".into(),
                note: Some(format!(
                    "{at}: a value of several types ({types:?}) has no proto type; kept as any JSON value"
                )),
            }
            .with_import(self, "google/protobuf/struct.proto"),
        }
    }

    fn rpc(&mut self, path: &str, method: &str, op: &Operation, shared: &[ObjectOrReference<oas3::spec::Parameter>]) {
        let at = format!("{} {path}", method.to_ascii_uppercase());
        let service_key = op.tags.first().cloned().unwrap_or_else(|| {
            path.split('/')
                .find(|s| !s.is_empty() && !s.starts_with('{') && !s.starts_with('v') || s.len() > 3)
                .unwrap_or("api")
                .to_owned()
        });
        let service = match pascal(&service_key) {
            s if s.ends_with("Service") => s,
            s => format!("{s}Service"),
        };
        let rpc_base = match &op.operation_id {
            Some(id) => pascal(id),
            None => pascal(&format!("{method} {path}")),
        };
        let rpc_name = self.unique(rpc_base.clone());
        let request_name = self.unique(format!("{rpc_base}Request"));
        let mut fields = String::new();
        let mut number = 1;
        // Path variables in the template are named after the request's fields; the server's
        // base path comes first, as clients send it.
        let mut template = format!("{}{path}", self.base);
        // An operation's parameter overrides the path item's of the same name and place.
        let mut params: Vec<oas3::spec::Parameter> = Vec::new();
        for p in shared.iter().chain(op.parameters.iter()).filter_map(|p| p.resolve(self.spec).ok()) {
            params.retain(|q| !(q.name == p.name && q.location == p.location));
            params.push(p);
        }
        let mut done = BTreeSet::new();
        for p in &params {
            if !matches!(p.location, ParameterIn::Path | ParameterIn::Query) || !done.insert(p.name.clone()) {
                if matches!(p.location, ParameterIn::Header | ParameterIn::Cookie) {
                    let note = format!(
                        "{at}: {} parameter {:?} is not part of the message (send it as metadata)",
                        match p.location {
                            ParameterIn::Header => "header",
                            _ => "cookie",
                        },
                        p.name
                    );
                    comment(&mut fields, "  ", &note);
                    self.notes.push(note);
                }
                continue;
            }
            let field = snake(&p.name);
            if p.location == ParameterIn::Path {
                template = template.replace(&format!("{{{}}}", p.name), &format!("{{{field}}}"));
            }
            let schema = p.schema.clone().unwrap_or(Schema::Boolean(oas3::spec::BooleanSchema(true)));
            let ft = self.field_type(&request_name, &p.name, &schema, &format!("{at} parameter {}", p.name));
            if let Some(d) = &p.description {
                comment(&mut fields, "  ", d);
            }
            if let Some(note) = &ft.note {
                comment(&mut fields, "  ", note);
                self.notes.push(note.clone());
            }
            let json = if default_json_name(&field) == p.name {
                String::new()
            } else {
                format!(" [json_name = \"{}\"]", escape(&p.name))
            };
            let _ = writeln!(fields, "  {}{} {field} = {number}{json};", ft.label, ft.ty);
            number += 1;
        }
        // The body: a field of its own (bound with body: "<field>"), or, inline, the request's
        // remaining fields (body: "*").
        let mut body_rule = String::new();
        if let Some(rb) = op.request_body.as_ref().and_then(|b| b.resolve(self.spec).ok()) {
            let media = rb.content.get("application/json").or_else(|| rb.content.values().next());
            match media.and_then(|m| m.schema.clone()) {
                Some(Schema::Object(o)) if matches!(o.as_ref(), ObjectOrReference::Object(inline) if is_object(inline) && number == 1) =>
                {
                    let ObjectOrReference::Object(inline) = *o else { unreachable!() };
                    for (prop, schema) in inline.properties.iter() {
                        self.field(
                            &mut fields,
                            &request_name,
                            prop,
                            schema,
                            &mut number,
                            &format!("{at} requestBody/{prop}"),
                        );
                    }
                    body_rule = "*".into();
                }
                Some(schema) => {
                    let ft = self.field_type(&request_name, "body", &schema, &format!("{at} requestBody"));
                    if let Some(note) = &ft.note {
                        comment(&mut fields, "  ", note);
                        self.notes.push(note.clone());
                    }
                    let _ = writeln!(fields, "  {}{} body = {number};", ft.label, ft.ty);
                    body_rule = "body".into();
                }
                None => {
                    let note = format!("{at}: the request body has no schema; left out");
                    comment(&mut fields, "  ", &note);
                    self.notes.push(note);
                }
            }
        }
        self.types.insert(
            request_name.clone(),
            format!("// Request of {rpc_name}.\nmessage {request_name} {{\n{fields}}}\n"),
        );

        // The answer: the first 2xx JSON schema.
        let ok = op.responses.as_ref().and_then(|rs| {
            rs.iter().filter(|(code, _)| code.starts_with('2')).find_map(|(_, r)| r.resolve(self.spec).ok())
        });
        let schema = ok.and_then(|r| {
            r.content.get("application/json").or_else(|| r.content.values().next()).and_then(|m| m.schema.clone())
        });
        let mut response_rule = String::new();
        let response = match schema {
            None => {
                self.imports.insert("google/protobuf/empty.proto");
                "google.protobuf.Empty".to_owned()
            }
            Some(Schema::Object(o)) if matches!(o.as_ref(), ObjectOrReference::Ref { .. }) => {
                let ObjectOrReference::Ref { ref_path, .. } = *o else { unreachable!() };
                let name = ref_name(&ref_path).unwrap_or_else(|| "google.protobuf.Empty".into());
                // A $ref to an array or scalar schema: wrap it, and answer with the field.
                match self.types.get(&name) {
                    Some(_) => name,
                    None => {
                        let wrapper = self.unique(format!("{rpc_base}Response"));
                        let ft = self.field_type(
                            &wrapper,
                            "value",
                            &Schema::Object(Box::new(ObjectOrReference::Ref {
                                ref_path,
                                summary: None,
                                description: None,
                            })),
                            &format!("{at} response"),
                        );
                        self.types.insert(
                            wrapper.clone(),
                            format!(
                                "// Response of {rpc_name}.\nmessage {wrapper} {{\n  {}{} value = 1;\n}}\n",
                                ft.label, ft.ty
                            ),
                        );
                        response_rule = "value".into();
                        wrapper
                    }
                }
            }
            Some(schema) => {
                let wrapper = self.unique(format!("{rpc_base}Response"));
                let resolved = schema.resolve(self.spec).ok();
                let inline_object = matches!(&resolved, Some(Schema::Object(o)) if matches!(o.as_ref(), ObjectOrReference::Object(x) if is_object(x) && !x.properties.is_empty()));
                if inline_object {
                    let Some(Schema::Object(o)) = resolved else { unreachable!() };
                    let ObjectOrReference::Object(x) = *o else { unreachable!() };
                    self.message(&wrapper, &x, &format!("{at} response"));
                } else {
                    // An array (or scalar) answer: a wrapper whose field is the whole body.
                    let ft = self.field_type(&wrapper, "value", &schema, &format!("{at} response"));
                    if let Some(note) = &ft.note {
                        self.notes.push(note.clone());
                    }
                    self.types.insert(
                        wrapper.clone(),
                        format!(
                            "// Response of {rpc_name}.\nmessage {wrapper} {{\n  {}{} value = 1;\n}}\n",
                            ft.label, ft.ty
                        ),
                    );
                    response_rule = "value".into();
                }
                wrapper
            }
        };

        let mut text = String::new();
        if let Some(s) = op.summary.as_ref().or(op.description.as_ref()) {
            comment(&mut text, "  ", s);
        }
        let _ = writeln!(text, "  rpc {rpc_name}({request_name}) returns ({response}) {{");
        let _ = writeln!(text, "    option (google.api.http) = {{");
        let custom = !matches!(method, "get" | "put" | "post" | "delete" | "patch");
        if custom {
            let _ = writeln!(
                text,
                "      custom: {{kind: \"{}\" path: \"{}\"}}",
                method.to_ascii_uppercase(),
                escape(&template)
            );
        } else {
            let _ = writeln!(text, "      {method}: \"{}\"", escape(&template));
        }
        if !body_rule.is_empty() {
            let _ = writeln!(text, "      body: \"{body_rule}\"");
        }
        if !response_rule.is_empty() {
            let _ = writeln!(text, "      response_body: \"{response_rule}\"");
        }
        let _ = writeln!(text, "    }};");
        let _ = writeln!(text, "  }}");
        self.services.entry(service).or_default().push(text);
        self.rpc_count += 1;
    }

    fn finish(&self) -> String {
        let mut out = String::new();
        let title = self.spec.info.title.clone();
        let _ = writeln!(
            out,
            "// Imported by `switchyard import` from the OpenAPI document \"{}\" ({}).",
            title, self.spec.info.version
        );
        let _ = writeln!(out, "// A starting point: review names, numbers and comments before serving it.");
        let _ = writeln!(out, "syntax = \"proto3\";\n");
        let _ = writeln!(out, "package {};\n", self.package);
        for i in &self.imports {
            let _ = writeln!(out, "import \"{i}\";");
        }
        out.push('\n');
        for (name, rpcs) in &self.services {
            let _ = writeln!(out, "service {name} {{");
            for r in rpcs {
                out.push_str(r);
            }
            out.push_str("}\n\n");
        }
        for text in self.types.values() {
            out.push_str(text);
            out.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "// Not expressed in proto:");
            for n in &self.notes {
                let _ = writeln!(out, "// - {n}");
            }
        }
        out
    }
}

impl FieldType {
    fn with_import(self, w: &mut Writer<'_>, file: &'static str) -> Self {
        w.imports.insert(file);
        self
    }
}

fn is_object(o: &ObjectSchema) -> bool {
    o.schema_type.as_ref().is_some_and(|t| t.is_object_or_nullable_object())
}

fn is_scalar(ty: &str) -> bool {
    matches!(ty, "string" | "bytes" | "int32" | "int64" | "uint32" | "uint64" | "double" | "float" | "bool")
}

/// The path part of the first server URL (`https://h/api/v3` or `/api/v3` -> `/api/v3`), without
/// a trailing slash; empty for `/` or none.
fn base_path(spec: &Spec) -> String {
    let Some(server) = spec.servers.first() else { return String::new() };
    let url = server.url.as_str();
    let path = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("", |j| &url[i + 3 + j..]),
        None => url,
    };
    path.trim_end_matches('/').to_owned()
}

/// The message name of a component schema reference.
fn ref_name(path: &str) -> Option<String> {
    path.strip_prefix("#/components/schemas/").map(pascal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(pascal("pet-store_api"), "PetStoreApi");
        assert_eq!(snake("petId"), "pet_id");
        assert_eq!(snake("X-Rate-Limit"), "x_rate_limit");
        assert_eq!(default_json_name("created_at"), "createdAt");
        assert_eq!(upper("sold out"), "SOLD_OUT");
    }
}
