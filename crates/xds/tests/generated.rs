//! The generated code in `src/generated/` is checked in, so that building Weft needs
//! neither `protoc` nor a protobuf compiler at all. This test regenerates it from
//! `proto/` (with protox, a protobuf compiler in pure Rust, and tonic-prost-build) and
//! fails when the checked-in file differs; `WEFT_REGENERATE=1 cargo test -p weft-xds
//! --test generated` writes the new file instead.

use std::path::Path;

#[test]
fn generated_code_matches_the_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(["weft/xds/v1/xds.proto"], [root.join("proto")])
        .unwrap_or_else(|e| panic!("the proto does not compile: {e}"));
    let out = std::env::temp_dir().join(format!("weft-xds-gen-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    let mut config = tonic_prost_build::Config::new();
    // Resource bodies are `bytes::Bytes`: one encoding shared by every stream.
    config.bytes(["."]);
    tonic_prost_build::configure()
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .compile_fds_with_config(fds, config)
        .expect("code generation");
    let fresh = std::fs::read_to_string(out.join("weft.xds.v1.rs")).expect("generated file");
    let _ = std::fs::remove_dir_all(&out);
    let checked_in = root.join("src/generated/weft.xds.v1.rs");
    if std::env::var_os("WEFT_REGENERATE").is_some() {
        std::fs::write(&checked_in, &fresh).expect("write the generated file");
        return;
    }
    let current = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert!(
        current == fresh,
        "{} is stale: run WEFT_REGENERATE=1 cargo test -p weft-xds --test generated",
        checked_in.display()
    );
}
