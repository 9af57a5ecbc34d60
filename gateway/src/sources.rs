//! Where the API the gateway serves comes from: descriptor sets (`protoc -o`, `buf build -o`),
//! `.proto` files compiled at start-up by protox, and the backends' server reflection — any mix
//! of them, merged into one descriptor pool.
//!
//! The annotations and types users' protos import from outside their own tree are built in:
//! `google/api/{annotations,http,httpbody,field_behavior}.proto`, `google/rpc/*`, grpc-gateway's
//! `protoc-gen-openapiv2/options` and Switchyard's `switchyard/v1/options.proto` (the
//! well-known types come with protox). The google.rpc types are always in the pool, so error
//! details render even when the user's descriptors lack them.

use miette::Diagnostic;
use prost_reflect::DescriptorPool;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver};
use std::path::{Path, PathBuf};

/// The API description the gateway is given.
#[derive(Debug, Clone, Default)]
pub struct ApiSources {
    /// Encoded FileDescriptorSets.
    pub descriptor_sets: Vec<PathBuf>,
    /// `.proto` files to compile.
    pub protos: Vec<PathBuf>,
    /// Where the `.proto` files and their imports are found.
    pub proto_paths: Vec<PathBuf>,
    /// Ask every backend for its services through server reflection.
    pub reflect: bool,
}

impl ApiSources {
    /// Whether any source is given (without one, the caller's default API is served).
    pub fn is_empty(&self) -> bool {
        self.descriptor_sets.is_empty() && self.protos.is_empty() && !self.reflect
    }
}

/// Why the API could not be loaded. The message names the file (and for a `.proto`, the line
/// and column) at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read descriptor set {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a valid descriptor set: {error}")]
    BadDescriptorSet { path: PathBuf, error: String },
    #[error("{0}")]
    Compile(String),
    #[error("server reflection of {backend}: {error}")]
    Reflection { backend: String, error: String },
    #[error("descriptors do not fit together: {0}")]
    Merge(String),
}

/// The built-in imports, by import path.
const BUILT_IN: &[(&str, &str)] = &[
    ("google/api/annotations.proto", include_str!("../../proto/google/api/annotations.proto")),
    ("google/api/http.proto", include_str!("../../proto/google/api/http.proto")),
    ("google/api/httpbody.proto", include_str!("../../proto/google/api/httpbody.proto")),
    ("google/api/field_behavior.proto", include_str!("../../proto/google/api/field_behavior.proto")),
    ("google/rpc/code.proto", include_str!("../../proto/google/rpc/code.proto")),
    ("google/rpc/status.proto", include_str!("../../proto/google/rpc/status.proto")),
    ("google/rpc/error_details.proto", include_str!("../../proto/google/rpc/error_details.proto")),
    (
        "protoc-gen-openapiv2/options/annotations.proto",
        include_str!("../../proto/protoc-gen-openapiv2/options/annotations.proto"),
    ),
    (
        "protoc-gen-openapiv2/options/openapiv2.proto",
        include_str!("../../proto/protoc-gen-openapiv2/options/openapiv2.proto"),
    ),
    ("switchyard/v1/options.proto", include_str!("../../proto/switchyard/v1/options.proto")),
];

/// Resolves the built-in imports from memory.
struct BuiltIn;

impl FileResolver for BuiltIn {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match BUILT_IN.iter().find(|(path, _)| *path == name) {
            Some((path, source)) => File::from_source(path, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Compiles `.proto` files found under `paths` (then among the built-in imports).
pub fn compile_protos(protos: &[PathBuf], paths: &[PathBuf]) -> Result<Vec<u8>, LoadError> {
    let mut resolver = ChainFileResolver::new();
    for dir in paths {
        resolver.add(IncludeFileResolver::new(dir.clone()));
    }
    resolver.add(BuiltIn);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(true);
    for proto in protos {
        let name = import_name(proto, paths);
        compiler.open_file(&name).map_err(|e| LoadError::Compile(located(&e, proto)))?;
    }
    Ok(compiler.encode_file_descriptor_set())
}

/// The import name of a `.proto` file: its path below the first include path that holds it.
fn import_name(proto: &Path, paths: &[PathBuf]) -> String {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let file = absolute(proto);
    for dir in paths {
        if let Ok(rest) = file.strip_prefix(absolute(dir)) {
            return rest.to_string_lossy().replace('\\', "/");
        }
    }
    proto.to_string_lossy().replace('\\', "/")
}

/// A protox error as `file:line:column: message`, as compilers print them.
fn located(e: &protox::Error, asked: &Path) -> String {
    let file = e.file().map(str::to_owned).unwrap_or_else(|| asked.display().to_string());
    let position = e.source_code().zip(e.labels().and_then(|mut l| l.next())).and_then(|(code, label)| {
        let span = code.read_span(label.inner(), 0, 0).ok()?;
        Some((span.line() + 1, span.column() + 1))
    });
    let detail = e.labels().and_then(|mut l| l.next()).and_then(|l| l.label().map(str::to_owned));
    let mut out = match position {
        Some((line, column)) => format!("{file}:{line}:{column}: {e}"),
        None => format!("{file}: {e}"),
    };
    if let Some(d) = detail {
        out.push_str(&format!(" ({d})"));
    }
    out
}

/// The built-in files, compiled once: added to every pool so that error details and the
/// annotations always resolve.
fn built_in() -> &'static [u8] {
    static SET: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let names: Vec<PathBuf> = BUILT_IN.iter().map(|(name, _)| PathBuf::from(name)).collect();
        compile_protos(&names, &[]).expect("the built-in protos compile")
    });
    &SET
}

/// Builds one pool from descriptor sets (already read or compiled), then the built-in files.
/// A file given twice is kept once (the first copy).
pub fn pool_of(sets: &[(String, Vec<u8>)]) -> Result<DescriptorPool, LoadError> {
    let mut pool = DescriptorPool::new();
    // Each set is added whole, so that files refer to one another in any order; a set that
    // repeats files of an earlier one (google/api, say) keeps the earlier copy.
    for (origin, bytes) in sets {
        pool.decode_file_descriptor_set(bytes.as_slice())
            .map_err(|e| LoadError::BadDescriptorSet { path: origin.into(), error: e.to_string() })?;
    }
    pool.decode_file_descriptor_set(built_in()).map_err(|e| LoadError::Merge(e.to_string()))?;
    Ok(pool)
}

/// Reads the descriptor sets and compiles the protos of `sources` (reflection is added by the
/// caller, who has the backends).
pub fn read_files(sources: &ApiSources) -> Result<Vec<(String, Vec<u8>)>, LoadError> {
    let mut sets = Vec::new();
    for path in &sources.descriptor_sets {
        let bytes = std::fs::read(path).map_err(|error| LoadError::Read { path: path.clone(), error })?;
        sets.push((path.display().to_string(), bytes));
    }
    if !sources.protos.is_empty() {
        let mut paths = sources.proto_paths.clone();
        if paths.is_empty() {
            paths.push(PathBuf::from("."));
        }
        sets.push(("--proto files".to_owned(), compile_protos(&sources.protos, &paths)?));
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protos_import_the_built_in_annotations() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shop/v1/shop.proto");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            "syntax = \"proto3\";\npackage shop.v1;\nimport \"google/api/annotations.proto\";\n\
             import \"google/api/httpbody.proto\";\nimport \"google/protobuf/timestamp.proto\";\n\
             message Item { string id = 1; google.protobuf.Timestamp at = 2; }\n\
             service Shop { rpc Get(Item) returns (Item) { option (google.api.http) = {get: \"/items/{id}\"}; } }\n",
        )
        .unwrap();
        let set = compile_protos(std::slice::from_ref(&file), &[dir.path().to_path_buf()]).unwrap();
        let pool = pool_of(&[("shop".into(), set)]).unwrap();
        assert!(pool.get_service_by_name("shop.v1.Shop").is_some());
        assert!(pool.get_message_by_name("google.rpc.BadRequest").is_some());
    }

    #[test]
    fn compile_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.proto");
        std::fs::write(&file, "syntax = \"proto3\";\nmessage A {\n  int32 x = ;\n}\n").unwrap();
        let e = compile_protos(std::slice::from_ref(&file), &[dir.path().to_path_buf()]).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("bad.proto:3:"), "{text}");
    }
}
