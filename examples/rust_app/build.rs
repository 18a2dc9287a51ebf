//! Generates the model at build time: kpgen writes the crate into OUT_DIR and prints
//! `cargo:rerun-if-changed` for the spec and every tensor it names.
use std::path::PathBuf;

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    kpgen::Builder::new(here.join("../basic_motions/kp/spec.yaml"))
        .target("cortex-m4")
        .write()
        .unwrap_or_else(|e| panic!("kpgen:\n{e}"));
    // cortex-m-rt's link.x includes memory.x from the linker search path.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::copy(here.join("memory.x"), out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
}
