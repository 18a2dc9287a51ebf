//! The generated Rust crate of a model using every feature (stacked LSTM, GRU and FastGRNN; KP,
//! straight-line and CSR overlays, a looped factor, a softmax head) is clippy-clean with
//! `-D warnings` on the host and on thumbv7em-none-eabihf, is `no_std`, forbids unsafe code and
//! has no dependencies; so is its int8 crate under `optimize: size` (loops, CSR overlays,
//! bias codes stored narrow and widened on load).

mod common;

use std::path::Path;
use std::process::Command;

/// Writes the generated crate (the files under `rust/`) into `dir`; returns its root.
fn write_crate(dir: &Path) -> std::path::PathBuf {
    let case = common::everything_model();
    let target = common::target();
    let (_fixture, gen) = common::generate(&case, &target).unwrap_or_else(|e| panic!("{e}"));
    write_rust(&gen, dir)
}

fn write_rust(gen: &kpgen::Generation, dir: &Path) -> std::path::PathBuf {
    let rust: Vec<_> = gen
        .files
        .iter()
        .filter(|f| f.path.starts_with("rust/"))
        .cloned()
        .collect();
    assert!(
        rust.iter().any(|f| f.path == "rust/Cargo.toml"),
        "no rust/Cargo.toml among {:?}",
        gen.files.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    kpgen::output::write_tree(dir, &rust).unwrap_or_else(|e| panic!("{e}"));
    dir.join("rust")
}

fn clippy(crate_dir: &Path, target_dir: &Path, triple: Option<&str>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.arg("clippy")
        .arg("--quiet")
        .arg("--offline")
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"));
    if let Some(t) = triple {
        cmd.args(["--target", t]);
    }
    cmd.args(["--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    let out = cmd.output().expect("run cargo clippy");
    assert!(
        out.status.success(),
        "clippy ({}) failed with {}:\n{}{}",
        triple.unwrap_or("host"),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // --quiet with -D warnings: a clean crate prints nothing but possibly cargo's own notes.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("warning"),
        "clippy ({}) printed warnings:\n{stderr}",
        triple.unwrap_or("host")
    );
}

#[test]
fn generated_crate_is_clippy_clean_no_std_and_dependency_free() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = write_crate(&dir.path().join("gen"));

    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
    for attr in ["#![no_std]", "#![forbid(unsafe_code)]"] {
        assert!(
            lib.lines().any(|l| l.trim() == attr),
            "src/lib.rs lacks `{attr}`"
        );
    }

    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap())
            .expect("the generated Cargo.toml parses");
    let no_entries = |table: &toml::Table, what: &str| {
        for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(deps) = table.get(key) {
                let deps = deps.as_table().expect("a dependency table");
                assert!(deps.is_empty(), "{what}[{key}] has entries: {deps:?}");
            }
        }
    };
    no_entries(&manifest, "");
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for (name, t) in targets {
            no_entries(t.as_table().unwrap(), &format!("target.{name}."));
        }
    }

    let target_dir = dir.path().join("target");
    clippy(&crate_dir, &target_dir, None);
    clippy(&crate_dir, &target_dir, Some("thumbv7em-none-eabihf"));
}

#[test]
fn the_int8_size_crate_is_clippy_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (_fixture, gen) = common::generate_for(
        &common::everything_model(),
        &common::target(),
        kpgen::spec::Precision::Int8,
        kpgen::spec::Optimize::Size,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let lib = gen
        .files
        .iter()
        .find(|f| f.path == "rust/src/lib.rs")
        .expect("rust/src/lib.rs");
    assert!(
        lib.contents.contains("i32::from(*s)"),
        "no bias stored narrow and widened on load"
    );
    let crate_dir = write_rust(&gen, &dir.path().join("gen"));
    let target_dir = dir.path().join("target");
    clippy(&crate_dir, &target_dir, None);
    clippy(&crate_dir, &target_dir, Some("thumbv7em-none-eabihf"));
}
