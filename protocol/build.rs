//! Compiles `proto/ferrocorn.proto` with protox (pure Rust), so the build
//! needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/ferrocorn.proto");
    let descriptors = protox::compile(["ferrocorn.proto"], ["proto"])?;
    prost_build::Config::new()
        // `bytes::Bytes` fields let a decoder slice the receive buffer
        // instead of copying every header and body chunk.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
