//! Reads the `google.api.http` annotations of every method in a descriptor pool into checked
//! [`Binding`]s: the only source of routes.

use crate::template::{PathTemplate, TemplateError};
use http::Method;
use prost::Message as _;
use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, Kind, MethodDescriptor};

/// `google.api.HttpRule`, decoded from the method option (field numbers from google/api/http.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpRule {
    #[prost(string, tag = "1")]
    pub selector: String,
    #[prost(oneof = "Pattern", tags = "2, 3, 4, 5, 6, 8")]
    pub pattern: Option<Pattern>,
    #[prost(string, tag = "7")]
    pub body: String,
    #[prost(string, tag = "12")]
    pub response_body: String,
    #[prost(message, repeated, tag = "11")]
    pub additional_bindings: Vec<HttpRule>,
}

/// The HTTP method and path template of a rule.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Pattern {
    #[prost(string, tag = "2")]
    Get(String),
    #[prost(string, tag = "3")]
    Put(String),
    #[prost(string, tag = "4")]
    Post(String),
    #[prost(string, tag = "5")]
    Delete(String),
    #[prost(string, tag = "6")]
    Patch(String),
    #[prost(message, tag = "8")]
    Custom(CustomPattern),
}

/// `google.api.CustomHttpPattern`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CustomPattern {
    #[prost(string, tag = "1")]
    pub kind: String,
    #[prost(string, tag = "2")]
    pub path: String,
}

/// `switchyard.v1.RawBody`: the raw-bytes mapping of a streaming method (proto/switchyard/v1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawBodyOption {
    #[prost(string, tag = "1")]
    pub bytes_field: String,
    #[prost(string, tag = "2")]
    pub counter_field: String,
}

/// A method's raw-bytes mapping, resolved against its messages.
#[derive(Debug, Clone)]
pub struct RawSpec {
    /// The bytes field that carries the data (of the request for client streaming, of the
    /// response for server streaming).
    pub bytes_field: FieldDescriptor,
    /// The integer field that numbers the pieces.
    pub counter_field: Option<FieldDescriptor>,
}

/// Which part of the request message the HTTP body fills.
#[derive(Debug, Clone)]
pub enum BodySpec {
    /// No body: path and query fill the message.
    None,
    /// `body: "*"`: every field not bound by the path.
    Whole,
    /// `body: "field"`: that top-level field; the query fills the rest.
    Field(FieldDescriptor),
}

/// The streaming kind of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Unary,
    ServerStreaming,
    ClientStreaming,
    Bidi,
}

impl CallKind {
    fn of(m: &MethodDescriptor) -> Self {
        match (m.is_client_streaming(), m.is_server_streaming()) {
            (false, false) => CallKind::Unary,
            (false, true) => CallKind::ServerStreaming,
            (true, false) => CallKind::ClientStreaming,
            (true, true) => CallKind::Bidi,
        }
    }
}

/// One HTTP route of one RPC.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The RPC this route calls.
    pub method: MethodDescriptor,
    /// Its streaming kind.
    pub kind: CallKind,
    /// The HTTP method.
    pub http_method: Method,
    /// The parsed path template.
    pub template: PathTemplate,
    /// What the body fills.
    pub body: BodySpec,
    /// The response field that becomes the HTTP body, if not the whole message.
    pub response_body: Option<FieldDescriptor>,
    /// The request fields bound by path variables, outermost first, in template order.
    pub path_fields: Vec<Vec<FieldDescriptor>>,
    /// The raw-bytes mapping, if the method has one.
    pub raw: Option<RawSpec>,
    /// The gRPC path, `/package.Service/Method`.
    pub grpc_path: http::uri::PathAndQuery,
    /// The JSON name of the `response_body` field, if any.
    pub response_json: Option<String>,
    /// How the response messages print as JSON.
    pub output: std::sync::Arc<crate::wire_json::Plan>,
    /// The field chains (proto names) the query string may not set: those the path binds, and
    /// the body field.
    pub query_skip: Vec<Vec<String>>,
    /// Whether a call may be sent again after a failure: a GET binding, or a method marked
    /// `idempotency_level = IDEMPOTENT` or `NO_SIDE_EFFECTS`.
    pub idempotent: bool,
    /// `GET /api/v1/users/{user_id}`: how metrics and the access log name the route.
    pub label: String,
}

impl Binding {
    /// `package.Service.Method`.
    pub fn full_method(&self) -> &str {
        self.method.full_name()
    }
}

/// Why the annotations cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{method}: {source}")]
    Template { method: String, source: TemplateError },
    #[error("{method}: {message}")]
    Invalid { method: String, message: String },
    #[error("{first} and {second} both bind {http_method} {template}")]
    Conflict { first: String, second: String, http_method: Method, template: String },
    #[error("bad --service pattern {pattern:?}: {error}")]
    Pattern { pattern: String, error: String },
}

/// Which services are served, and whether methods without a binding get one.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Service globs (`pkg.v1.*`); empty: every service with at least one binding.
    pub services: Vec<String>,
    /// `POST /{package.Service}/{Method}` with `body: "*"` for every method without a binding.
    pub default_bindings: bool,
}

/// Every binding of every annotated method in `pool`, additional bindings included.
pub fn load_bindings(pool: &DescriptorPool) -> Result<Vec<Binding>, RuleError> {
    select_bindings(pool, &Selection::default())
}

/// The bindings of the services `selection` picks from `pool`.
pub fn select_bindings(pool: &DescriptorPool, selection: &Selection) -> Result<Vec<Binding>, RuleError> {
    let ext = pool.get_extension_by_name("google.api.http");
    let globs = if selection.services.is_empty() {
        None
    } else {
        let mut set = globset::GlobSetBuilder::new();
        for p in &selection.services {
            let glob =
                globset::Glob::new(p).map_err(|e| RuleError::Pattern { pattern: p.clone(), error: e.to_string() })?;
            set.add(glob);
        }
        Some(
            set.build()
                .map_err(|e| RuleError::Pattern { pattern: selection.services.join(","), error: e.to_string() })?,
        )
    };
    let rule_of = |method: &MethodDescriptor| -> Result<Option<HttpRule>, RuleError> {
        let Some(ext) = &ext else { return Ok(None) };
        let options = method.options();
        if !options.has_extension(ext) {
            return Ok(None);
        }
        let value = options.get_extension(ext);
        let Some(msg) = value.as_message() else { return Ok(None) };
        HttpRule::decode(msg.encode_to_vec().as_slice())
            .map(Some)
            .map_err(|e| invalid(method, format!("undecodable google.api.http: {e}")))
    };
    let mut out = Vec::new();
    for service in pool.services() {
        let annotated = service.methods().any(|m| rule_of(&m).ok().flatten().is_some());
        let serve = match &globs {
            Some(g) => g.is_match(service.full_name()),
            // Infrastructure services (health, reflection) get no default routes unless asked for.
            None => annotated || (selection.default_bindings && !service.full_name().starts_with("grpc.")),
        };
        if !serve {
            continue;
        }
        for method in service.methods() {
            let rule = match rule_of(&method)? {
                Some(rule) => rule,
                None if selection.default_bindings => HttpRule {
                    pattern: Some(Pattern::Post(format!("/{}/{}", service.full_name(), method.name()))),
                    body: "*".into(),
                    ..Default::default()
                },
                None => continue,
            };
            out.push(binding(&method, &rule)?);
            for extra in &rule.additional_bindings {
                if !extra.additional_bindings.is_empty() {
                    return Err(invalid(&method, "additional_bindings must not nest"));
                }
                out.push(binding(&method, extra)?);
            }
        }
    }
    check_conflicts(&out)?;
    Ok(out)
}

/// Two bindings with the same HTTP method and template shape would shadow one another.
fn check_conflicts(bindings: &[Binding]) -> Result<(), RuleError> {
    let mut seen: std::collections::HashMap<(Method, String), &Binding> = std::collections::HashMap::new();
    for b in bindings {
        let key = (b.http_method.clone(), b.template.shape());
        if let Some(first) = seen.get(&key) {
            if first.full_method() == b.full_method() {
                continue;
            }
            return Err(RuleError::Conflict {
                first: first.full_method().to_owned(),
                second: b.full_method().to_owned(),
                http_method: b.http_method.clone(),
                template: b.template.to_string(),
            });
        }
        seen.insert(key, b);
    }
    Ok(())
}

fn invalid(method: &MethodDescriptor, message: impl Into<String>) -> RuleError {
    RuleError::Invalid { method: method.full_name().to_owned(), message: message.into() }
}

fn binding(method: &MethodDescriptor, rule: &HttpRule) -> Result<Binding, RuleError> {
    let (http_method, path) = match &rule.pattern {
        Some(Pattern::Get(p)) => (Method::GET, p.as_str()),
        Some(Pattern::Put(p)) => (Method::PUT, p.as_str()),
        Some(Pattern::Post(p)) => (Method::POST, p.as_str()),
        Some(Pattern::Delete(p)) => (Method::DELETE, p.as_str()),
        Some(Pattern::Patch(p)) => (Method::PATCH, p.as_str()),
        Some(Pattern::Custom(c)) => (
            Method::from_bytes(c.kind.as_bytes())
                .map_err(|_| invalid(method, format!("bad custom method {:?}", c.kind)))?,
            c.path.as_str(),
        ),
        None => return Err(invalid(method, "google.api.http has no pattern")),
    };
    let template = PathTemplate::parse(path)
        .map_err(|source| RuleError::Template { method: method.full_name().to_owned(), source })?;
    let input = method.input();
    let mut path_fields = Vec::new();
    for var in &template.variables {
        let mut msg = input.clone();
        let mut chain = Vec::new();
        for (i, name) in var.field_path.iter().enumerate() {
            let field = msg.get_field_by_name(name).ok_or_else(|| {
                invalid(method, format!("path variable {:?}: no field {name:?} in {}", var.field(), msg.full_name()))
            })?;
            let last = i + 1 == var.field_path.len();
            if field.cardinality() == Cardinality::Repeated {
                return Err(invalid(method, format!("path variable {:?} is repeated", var.field())));
            }
            match field.kind() {
                Kind::Message(m) if !last => msg = m,
                Kind::Message(m) if !crate::descriptor::is_scalar_wrapper(&m) => {
                    return Err(invalid(method, format!("path variable {:?} is a message", var.field())));
                }
                _ if !last => {
                    return Err(invalid(method, format!("path variable {:?}: {name:?} is not a message", var.field())));
                }
                _ => {}
            }
            chain.push(field);
        }
        path_fields.push(chain);
    }
    let body = match rule.body.as_str() {
        "" => BodySpec::None,
        "*" => BodySpec::Whole,
        name => {
            let field = input.get_field_by_name(name).ok_or_else(|| {
                invalid(method, format!("body field {name:?} does not exist in {}", input.full_name()))
            })?;
            if field.is_list() || field.is_map() {
                return Err(invalid(
                    method,
                    format!("body field {name:?} is repeated; name a singular field or use \"*\""),
                ));
            }
            BodySpec::Field(field)
        }
    };
    let response_body = match rule.response_body.as_str() {
        "" => None,
        name => Some(
            method
                .output()
                .get_field_by_name(name)
                .ok_or_else(|| invalid(method, format!("response_body field {name:?} does not exist")))?,
        ),
    };
    let raw = raw_spec(method)?;
    let grpc_path = format!("/{}/{}", method.parent_service().full_name(), method.name())
        .parse()
        .map_err(|_| invalid(method, "the method's name is not a valid gRPC path"))?;
    let response_json = response_body.as_ref().map(|f| f.json_name().to_owned());
    let mut query_skip: Vec<Vec<String>> = path_fields
        .iter()
        .map(|chain: &Vec<FieldDescriptor>| chain.iter().map(|f| f.name().to_owned()).collect())
        .collect();
    if let BodySpec::Field(f) = &body {
        query_skip.push(vec![f.name().to_owned()]);
    }
    // google.protobuf.MethodOptions.IdempotencyLevel: 1 NO_SIDE_EFFECTS, 2 IDEMPOTENT.
    let level = method.method_descriptor_proto().options.as_ref().and_then(|o| o.idempotency_level).unwrap_or(0);
    let idempotent = http_method == Method::GET || matches!(level, 1 | 2);
    let label = format!("{http_method} {template}");
    Ok(Binding {
        label,
        idempotent,
        query_skip,
        grpc_path,
        response_json,
        output: std::sync::Arc::new(crate::wire_json::Plan::new(&method.output())),
        method: method.clone(),
        raw,
        kind: CallKind::of(method),
        http_method,
        template,
        body,
        response_body,
        path_fields,
    })
}

/// Reads and checks the `switchyard.v1.raw_body` option of a method.
fn raw_spec(method: &MethodDescriptor) -> Result<Option<RawSpec>, RuleError> {
    let Some(ext) = method.parent_pool().get_extension_by_name("switchyard.v1.raw_body") else {
        return Ok(None);
    };
    let options = method.options();
    if !options.has_extension(&ext) {
        return Ok(None);
    }
    let value = options.get_extension(&ext);
    let Some(msg) = value.as_message() else {
        return Ok(None);
    };
    let opt = RawBodyOption::decode(msg.encode_to_vec().as_slice())
        .map_err(|e| invalid(method, format!("undecodable switchyard.v1.raw_body: {e}")))?;
    let target = match CallKind::of(method) {
        CallKind::ClientStreaming => method.input(),
        CallKind::ServerStreaming => method.output(),
        _ => {
            return Err(invalid(method, "raw_body applies to client- or server-streaming methods only"));
        }
    };
    let bytes_field = target
        .get_field_by_name(&opt.bytes_field)
        .filter(|f| f.kind() == Kind::Bytes && !f.is_list())
        .ok_or_else(|| {
            invalid(method, format!("raw_body: {:?} is not a bytes field of {}", opt.bytes_field, target.full_name()))
        })?;
    let counter_field = match opt.counter_field.as_str() {
        "" => None,
        name => Some(
            target
                .get_field_by_name(name)
                .filter(|f| crate::wire::is_counter_kind(&f.kind()) && !f.is_list())
                .ok_or_else(|| {
                    invalid(method, format!("raw_body: {name:?} is not an integer field of {}", target.full_name()))
                })?,
        ),
    };
    Ok(Some(RawSpec { bytes_field, counter_field }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bindings_and_service_globs() {
        let pool = DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap();
        let all = select_bindings(&pool, &Selection { services: vec![], default_bindings: true }).unwrap();
        // Every annotated method keeps its routes; the infrastructure services get none.
        assert!(all.iter().any(|b| b.template.to_string() == "/api/v1/users/{user_id}"));
        assert!(all.iter().all(|b| !b.full_method().starts_with("grpc.")));
        let users =
            select_bindings(&pool, &Selection { services: vec!["user.v1.*".into()], default_bindings: false }).unwrap();
        assert!(!users.is_empty() && users.iter().all(|b| b.full_method().starts_with("user.v1.")));
        // A service with unannotated methods, given them by --default-bindings.
        let health =
            select_bindings(&pool, &Selection { services: vec!["switchyard.*".into()], default_bindings: true })
                .unwrap();
        assert!(health.is_empty());
        let mut file = prost_types::FileDescriptorProto {
            name: Some("plain.proto".into()),
            package: Some("plain.v1".into()),
            syntax: Some("proto3".into()),
            ..Default::default()
        };
        file.message_type.push(prost_types::DescriptorProto { name: Some("M".into()), ..Default::default() });
        file.service.push(prost_types::ServiceDescriptorProto {
            name: Some("Plain".into()),
            method: vec![prost_types::MethodDescriptorProto {
                name: Some("Do".into()),
                input_type: Some(".plain.v1.M".into()),
                output_type: Some(".plain.v1.M".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_proto(file).unwrap();
        assert!(select_bindings(&pool, &Selection::default()).unwrap().is_empty());
        let b = select_bindings(&pool, &Selection { services: vec![], default_bindings: true }).unwrap();
        assert_eq!((b[0].http_method.as_str(), b[0].template.to_string()), ("POST", "/plain.v1.Plain/Do".to_owned()));
        assert!(matches!(b[0].body, BodySpec::Whole));
    }

    #[test]
    fn reads_every_annotation_of_the_reference_protos() {
        let pool = DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap();
        let bindings = load_bindings(&pool).unwrap();
        let find = |m: &str, t: &str| {
            bindings
                .iter()
                .find(|b| b.http_method.as_str() == m && b.template.to_string() == t)
                .unwrap_or_else(|| panic!("no {m} {t}"))
        };
        let get = find("GET", "/api/v1/users/{user_id}");
        assert_eq!(get.full_method(), "user.v1.UserService.GetUser");
        assert!(matches!(get.body, BodySpec::None));
        assert_eq!(get.path_fields[0][0].name(), "user_id");
        assert!(matches!(find("PATCH", "/api/v1/users/{user_id}").body, BodySpec::Whole));
        let put = find("PUT", "/api/v1/types/responses/user");
        assert!(matches!(&put.body, BodySpec::Field(f) if f.name() == "user"));
        assert_eq!(put.response_body.as_ref().unwrap().name(), "user");
        find("GET", "/api/v1/types/events/{id}");
        find("POST", "/api/v1/types/scalars:echo");
        assert_eq!(find("GET", "/api/v1/users").kind, CallKind::Unary);
        let up = find("POST", "/api/v1/uploads");
        assert_eq!(up.kind, CallKind::ClientStreaming);
        let raw = up.raw.as_ref().unwrap();
        assert_eq!((raw.bytes_field.name(), raw.counter_field.as_ref().unwrap().name()), ("data", "sequence"));
        let down = find("GET", "/api/v1/uploads/{file_id}:download");
        assert_eq!(down.kind, CallKind::ServerStreaming);
        assert_eq!(down.raw.as_ref().unwrap().bytes_field.number(), 3);
        assert_eq!(find("GET", "/api/v1/chat/{session_id}").kind, CallKind::Bidi);
        assert!(find("GET", "/api/v1/orders:watch").raw.is_none());
    }
}
