//! Compiles every `.proto` under this directory with protox (no system protoc), then generates:
//! prost messages and tonic clients/servers, pbjson serde impls (proto3 canonical JSON), the
//! encoded descriptor set (reflection, the gateway's routes, OpenAPI), a module tree that includes
//! both, and the `for_each_method!` table that lets the gateway register typed invokers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

type BoxError = Box<dyn std::error::Error>;

/// Packages whose Rust types come from elsewhere, not from this build.
const EXTERN: &[(&str, &str)] = &[
    // pbjson-types prints Timestamp with `+00:00` and FieldMask as an object; ours are canonical.
    (".google.protobuf.Timestamp", "crate::wkt::Timestamp"),
    (".google.protobuf.FieldMask", "crate::wkt::FieldMask"),
    (".google.protobuf", "::pbjson_types"),
];

fn main() -> Result<(), BoxError> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut protos = Vec::new();
    find_protos(&root, &root, &mut protos)?;
    protos.sort();
    println!("cargo:rerun-if-changed=build.rs");
    for p in &protos {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&protos)?;
    let encoded = compiler.encode_file_descriptor_set();
    std::fs::write(out.join("descriptor.bin"), &encoded)?;

    // prost needs every file (imports included) to lay out messages; the google.protobuf module
    // it writes is simply not included, those types come from EXTERN.
    let fds = compiler.file_descriptor_set();
    let packages: Vec<String> = {
        let mut p: Vec<String> =
            fds.file.iter().map(|f| f.package().to_owned()).filter(|p| p != "google.protobuf").collect();
        p.sort();
        p.dedup();
        p
    };

    let mut builder =
        tonic_prost_build::configure().build_client(true).build_server(true).compile_well_known_types(true);
    for (proto, rust) in EXTERN {
        builder = builder.extern_path(*proto, *rust);
    }
    builder.compile_fds(fds.clone())?;
    for p in &packages {
        let path = out.join(format!("{p}.rs"));
        let code = std::fs::read_to_string(&path)?;
        std::fs::write(&path, server_codec(&code))?;
    }

    let mut json = pbjson_build::Builder::new();
    json.register_descriptors(&encoded)?
        .out_dir(&out)
        // Default values are emitted so REST clients always see the same shape.
        .emit_fields()
        // Unknown request fields are ignored, as grpc-gateway does by default.
        .ignore_unknown_fields();
    for (proto, rust) in EXTERN {
        json.extern_path(*proto, *rust);
    }
    let prefixes: Vec<String> = packages.iter().map(|p| format!(".{p}")).collect();
    json.build(&prefixes)?;
    for p in &packages {
        let path = out.join(format!("{p}.serde.rs"));
        let code = std::fs::read_to_string(&path)?;
        std::fs::write(&path, canonicalize_serde(&code, &fds, p))?;
    }

    std::fs::write(out.join("modules.rs"), module_tree(&packages))?;
    std::fs::write(out.join("methods.rs"), method_table(&fds, &packages))?;
    Ok(())
}

fn find_protos(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), BoxError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "src" || n == "target") {
                continue;
            }
            find_protos(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            let rel = path.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
            out.push(rel);
        }
    }
    Ok(())
}

/// Points the generated servers (not the clients) at `crate::codec::ServerCodec`, so that an
/// undecodable request is INVALID_ARGUMENT. Fails the build if tonic's output changes shape.
fn server_codec(code: &str) -> String {
    const FROM: &str = "tonic_prost::ProstCodec::default()";
    const TO: &str = "crate::codec::ServerCodec::default()";
    // Each generated service module starts a line with `pub mod <name>_client` or `_server`.
    let mut parts = code.split("\npub mod ");
    let mut out = parts.next().unwrap_or_default().to_owned();
    for module in parts {
        out.push_str("\npub mod ");
        let name = module.split_whitespace().next().unwrap_or_default();
        if name.ends_with("_server") {
            assert!(module.contains(FROM), "tonic output changed: {name} has no {FROM}");
            out.push_str(&module.replace(FROM, TO));
        } else {
            out.push_str(module);
        }
    }
    out
}

/// One nested `pub mod` per package segment, including prost's and pbjson's output.
fn module_tree(packages: &[String]) -> String {
    #[derive(Default)]
    struct Node {
        children: BTreeMap<String, Node>,
        package: Option<String>,
    }
    let mut tree = Node::default();
    for p in packages {
        let mut node = &mut tree;
        for seg in p.split('.') {
            node = node.children.entry(seg.to_owned()).or_default();
        }
        node.package = Some(p.clone());
    }
    fn emit(node: &Node, depth: usize, s: &mut String) {
        let pad = "    ".repeat(depth);
        if let Some(p) = &node.package {
            let _ = writeln!(s, "{pad}include!(concat!(env!(\"OUT_DIR\"), \"/{p}.rs\"));");
            let _ = writeln!(s, "{pad}include!(concat!(env!(\"OUT_DIR\"), \"/{p}.serde.rs\"));");
        }
        for (name, child) in &node.children {
            let _ = writeln!(s, "{pad}pub mod {name} {{");
            emit(child, depth + 1, s);
            let _ = writeln!(s, "{pad}}}");
        }
    }
    let mut s = String::new();
    emit(&tree, 0, &mut s);
    s
}

/// Two fixes to pbjson's serializers, applied to its output so every message gets them:
/// - an unset singular message field (not in a oneof) is printed as `null` rather than left out,
///   so REST clients see every field as grpc-gateway prints them (`EmitUnpopulated`);
/// - float and double values go through `crate::json::Float`, which prints NaN and the infinities
///   as the strings the proto3 JSON mapping requires (serde_json would print `null`).
///
/// Each rewrite must find the text it expects: a pbjson upgrade that changes it fails the build
/// here instead of silently dropping a fix.
fn canonicalize_serde(code: &str, fds: &prost_types::FileDescriptorSet, package: &str) -> String {
    use prost_types::field_descriptor_proto::{Label, Type};
    let mut code = code.to_owned();
    let mut messages = Vec::new();
    for file in fds.file.iter().filter(|f| f.package() == package) {
        fn walk<'a>(
            prefix: &str,
            m: &'a prost_types::DescriptorProto,
            out: &mut Vec<(String, &'a prost_types::DescriptorProto)>,
        ) {
            let name = format!("{prefix}.{}", m.name());
            for n in &m.nested_type {
                walk(&name, n, out);
            }
            out.push((name, m));
        }
        for m in &file.message_type {
            walk(package, m, &mut messages);
        }
    }
    for (full, m) in messages {
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            continue;
        }
        let anchor = format!("serializer.serialize_struct(\"{full}\"");
        let Some(start) = code.find(&anchor) else {
            continue;
        };
        let end = start + code[start..].find("struct_ser.end()").expect("struct_ser.end()");
        let mut block = code[start..end].to_owned();
        for f in &m.field {
            let rust = rust_field(f.name());
            let json = f.json_name();
            let real_oneof = f.oneof_index.is_some() && !f.proto3_optional();
            let repeated = f.label() == Label::Repeated;
            let must = |block: &mut String, from: String, to: String| {
                assert!(block.contains(&from), "pbjson output changed: {full}: {from}");
                *block = block.replace(&from, &to);
            };
            match f.r#type() {
                Type::Message if !repeated && !real_oneof && !f.proto3_optional() => must(
                    &mut block,
                    format!(
                        "if let Some(v) = self.{rust}.as_ref() {{\n            struct_ser.serialize_field(\"{json}\", v)?;\n        }}"
                    ),
                    format!("struct_ser.serialize_field(\"{json}\", &self.{rust})?;"),
                ),
                Type::Double | Type::Float if !real_oneof => {
                    if f.proto3_optional() {
                        must(
                            &mut block,
                            format!("struct_ser.serialize_field(\"{json}\", v)?;"),
                            format!("struct_ser.serialize_field(\"{json}\", &crate::json::Float(v))?;"),
                        )
                    } else {
                        must(
                            &mut block,
                            format!("struct_ser.serialize_field(\"{json}\", &self.{rust})?;"),
                            format!("struct_ser.serialize_field(\"{json}\", &crate::json::Float(&self.{rust}))?;"),
                        )
                    }
                }
                _ => {}
            }
        }
        code.replace_range(start..end, &block);
    }
    code
}

/// The Rust name prost gives a field.
fn rust_field(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "else", "enum", "false", "fn", "for", "if", "impl", "in", "let", "loop",
        "match", "mod", "move", "mut", "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe",
        "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
        "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    let snake = snake(name);
    if KEYWORDS.contains(&snake.as_str()) { format!("r#{snake}") } else { snake }
}

/// The Rust path of a fully qualified proto type, as seen from outside this crate.
fn rust_type(full: &str, packages: &[String]) -> String {
    for (proto, rust) in EXTERN {
        if full == *proto || full.starts_with(&format!("{proto}.")) {
            let rest = &full[proto.len()..];
            let rust = rust.replace("crate::", "$crate::").replace("::pbjson_types", "$crate::pbjson_types");
            return format!("{rust}{}", rest.replace('.', "::"));
        }
    }
    let name = full.trim_start_matches('.');
    let package = packages
        .iter()
        .filter(|p| name.starts_with(&format!("{p}.")))
        .max_by_key(|p| p.len())
        .unwrap_or_else(|| panic!("no package for {full}"));
    let rest: Vec<&str> = name[package.len() + 1..].split('.').collect();
    let mut path = format!("$crate::{}", package.replace('.', "::"));
    for (i, seg) in rest.iter().enumerate() {
        if i + 1 == rest.len() {
            let _ = write!(path, "::{seg}");
        } else {
            let _ = write!(path, "::{}", snake(seg));
        }
    }
    path
}

fn snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
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

fn method_table(fds: &prost_types::FileDescriptorSet, packages: &[String]) -> String {
    let mut rows = String::new();
    for file in fds.file.iter().filter(|f| packages.iter().any(|p| p == f.package())) {
        for service in &file.service {
            for m in &service.method {
                let _ = writeln!(
                    rows,
                    "            \"{}.{}.{}\" => {}, {};",
                    file.package(),
                    service.name(),
                    m.name(),
                    rust_type(m.input_type(), packages),
                    rust_type(m.output_type(), packages),
                );
            }
        }
    }
    format!(
        "/// Calls `$callback! {{ \"pkg.Service.Method\" => RequestType, ResponseType; ... }}` with\n\
         /// one row per RPC of every compiled service, so a consumer can instantiate generic code\n\
         /// (such as the gateway's typed invokers) for each method without naming any by hand.\n\
         #[macro_export]\n\
         macro_rules! for_each_method {{\n    ($callback:ident) => {{\n        $callback! {{\n{rows}        }}\n    }};\n}}\n"
    )
}
