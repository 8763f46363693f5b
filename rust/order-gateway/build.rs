//! Generates the protobuf messages of the Execution contract from `proto/` (the
//! one source of truth), with the vendored google.rpc types beside it. protox
//! compiles the files in Rust: no protoc is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../..");
    let proto = root.join("proto");
    let third_party = root.join("third_party/proto");
    for file in [
        proto.join("nexus/execution/v1/execution.proto"),
        proto.join("nexus/common/v1/types.proto"),
        third_party.join("google/rpc/status.proto"),
    ] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(
        [proto.join("nexus/execution/v1/execution.proto")],
        [proto, third_party],
    )?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
