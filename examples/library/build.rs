//! Compiles the library proto with protox (no system protoc): tonic server and client code, and
//! the encoded descriptor set that server reflection serves. `google/api/annotations.proto`
//! comes from the workspace's `proto/` folder.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = here.join("proto");
    let shared = here.join("../../proto");
    println!("cargo:rerun-if-changed={}", protos.display());
    let mut compiler = protox::Compiler::new([&protos, &shared])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(["library/v1/library.proto"])?;
    std::fs::write(out.join("library.bin"), compiler.encode_file_descriptor_set())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
