//! The C output as users integrate it: a CMake firmware (via `add_subdirectory` of the
//! output's c/ and via `kpgen_add_model` at build time) and a Makefile firmware (via
//! `c/kpgen.mk`) build the bundled BasicMotions KP model with arm-none-eabi-gcc, run under
//! QEMU, and print scores equal to kpgen's float reference. Fails, never skips, without cmake,
//! make, the cross compiler or QEMU (`ci/setup` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use kpgen::base::sequences::TestInputs;
use kpgen::verify::reference_outputs;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (ci/setup installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The synthetic sequence of examples/firmware/main.c.
fn input() -> Vec<f32> {
    let (steps, features) = (100, 6);
    (0..steps * features)
        .map(|i| {
            let (t, f) = (i / features, i % features);
            ((7 * t + 3 * f) % 11) as f32 - 5.0
        })
        .map(|v| v / 5.0)
        .collect()
}

/// Runs `elf` under QEMU and checks its scores against the f64 reference.
fn check_firmware(elf: &Path) {
    let text = run(Command::new("timeout")
        .args(["60", "qemu-system-arm"])
        .args([
            "-M",
            "mps2-an386",
            "-display",
            "none",
            "-serial",
            "null",
            "-monitor",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ])
        .arg(elf));
    assert!(text.contains("done"), "{text}");
    let scores: Vec<f32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("score "))
        .map(|h| f32::from_bits(u32::from_str_radix(h.trim(), 16).unwrap()))
        .collect();
    let model = kpgen::load(&repo().join("examples/basic_motions/kp/spec.yaml")).unwrap();
    let inputs = TestInputs {
        steps: 100,
        features: 6,
        sequences: vec![input()],
        lengths: vec![100],
        labels: None,
    };
    let reference = &reference_outputs(&model, &inputs)[0];
    assert_eq!(scores.len(), reference.len(), "{text}");
    for (y, r) in scores.iter().zip(reference) {
        let err = (f64::from(*y) - r).abs();
        assert!(
            err <= 1e-4 * r.abs().max(1.0),
            "score {y} vs reference {r}\n{text}"
        );
    }
}

fn kpgen_build(out: &Path) {
    run(Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .arg("build")
        .arg(repo().join("examples/basic_motions/kp/spec.yaml"))
        .arg("--out")
        .arg(out));
}

fn cmake_configure(build: &Path, extra: &[String]) {
    run(Command::new("cmake")
        .arg("-S")
        .arg(repo().join("examples/cmake_app"))
        .arg("-B")
        .arg(build)
        .arg(format!(
            "-DCMAKE_TOOLCHAIN_FILE={}",
            repo()
                .join("examples/firmware/arm-none-eabi.cmake")
                .display()
        ))
        .args(extra));
}

fn cmake_build(build: &Path) -> String {
    run(Command::new("cmake").arg("--build").arg(build))
}

#[test]
fn cmake_add_subdirectory_of_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    kpgen_build(&out);
    let build = dir.path().join("build");
    cmake_configure(&build, &[format!("-DKPGEN_OUT={}", out.display())]);
    cmake_build(&build);
    check_firmware(&build.join("app.elf"));
}

#[test]
fn cmake_kpgen_add_model_regenerates_when_an_input_changes() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the model, so its files can be touched.
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(repo().join("examples/basic_motions/kp")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, model.join(p.file_name().unwrap())).unwrap();
    }
    let build = dir.path().join("build");
    cmake_configure(
        &build,
        &[
            format!("-DKPGEN_EXECUTABLE={}", env!("CARGO_BIN_EXE_kpgen")),
            format!("-DKPGEN_SPEC={}", model.join("spec.yaml").display()),
        ],
    );
    let first = cmake_build(&build);
    assert!(first.contains("kpgen: wrote"), "{first}");
    check_firmware(&build.join("app.elf"));
    // Nothing changed: kpgen does not run again.
    let again = cmake_build(&build);
    assert!(!again.contains("kpgen: wrote"), "{again}");
    // A tensor the spec names changed: it does (the depfile lists every file the spec reads).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let bias = model.join("l1_b.npy");
    let bytes = std::fs::read(&bias).unwrap();
    std::fs::write(&bias, bytes).unwrap();
    let changed = cmake_build(&build);
    assert!(changed.contains("kpgen: wrote"), "{changed}");
    check_firmware(&build.join("app.elf"));
}

#[test]
fn make_includes_kpgen_mk() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    kpgen_build(&out);
    let build = dir.path().join("build");
    run(Command::new("make")
        .arg("-C")
        .arg(repo().join("examples/make_app"))
        .arg(format!("KPGEN_OUT={}", out.display()))
        .arg(format!("BUILD={}", build.display())));
    check_firmware(&build.join("app.elf"));
}

#[test]
fn cargo_build_rs_generates_the_model() {
    // A target folder of its own inside the workspace's, so reruns are incremental.
    let target_dir = repo().join("target/rust_app");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(cargo)
        .current_dir(repo().join("examples/rust_app"))
        .args(["build", "--release", "--locked"])
        .env("CARGO_TARGET_DIR", &target_dir));
    check_firmware(&target_dir.join("thumbv7em-none-eabihf/release/kpgen-rust-app"));
}
