//! The text of the generated files, one insta snapshot per file, for a small model that uses
//! every construct (KP with unrolled and looped factors, straight-line and CSR overlays, GRU,
//! FastGRNN, a softmax head). Snapshots guard the text; the conformance tests run it.

use std::path::Path;

use kpgen::base::tensor::write_npy_f32;

/// Deterministic values with a few exact zeros (which unrolled code drops).
fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let k = (i * 37 + salt * 11) % 23;
            if k == 0 {
                0.0
            } else {
                (k as f32 - 11.0) / 32.0
            }
        })
        .collect()
}

fn overlay(rows: usize, cols: usize, every: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| if i % every == 3 { 0.125 } else { 0.0 })
        .collect()
}

fn write(dir: &Path) -> std::path::PathBuf {
    let t = |name: &str, shape: &[usize], data: Vec<f32>| {
        write_npy_f32(&dir.join(name), shape, &data).unwrap();
    };
    // layer 0: GRU 4 -> 8; w_ih 24x4 = (6x2)⊗(4x2); w_hh 24x8 = (6x4)⊗(4x2) + 8 nnz overlay.
    t("g_a_ih.npy", &[6, 2], values(12, 1));
    t("g_b_ih.npy", &[4, 2], values(8, 2));
    t("g_a_hh.npy", &[6, 4], values(24, 3));
    t("g_b_hh.npy", &[4, 2], values(8, 4));
    t("g_s_hh.npy", &[24, 8], overlay(24, 8, 24));
    t("g_b.npy", &[24], values(24, 5));
    // layer 1: FastGRNN 8 -> 16; w 16x8 dense (unrolled: 128 > 64 so looped);
    // u 16x16 = (2x2)⊗(8x8): B has 64 elements (unrolled), with a 160-nnz CSR overlay.
    t("f_w.npy", &[16, 8], values(128, 6));
    t("f_ua.npy", &[2, 2], values(4, 7));
    t("f_ub.npy", &[8, 8], values(64, 8));
    t(
        "f_us.npy",
        &[16, 16],
        (0..256)
            .map(|i| {
                if i % 8 != 5 {
                    0.01 * (i % 7) as f32
                } else {
                    0.0
                }
            })
            .collect(),
    );
    t("f_bz.npy", &[16], values(16, 9));
    t("f_bh.npy", &[16], values(16, 10));
    // layer 2: dense 16 -> 3, softmax; w = (1x4)⊗(3x4).
    t("d_a.npy", &[1, 4], values(4, 11));
    t("d_b.npy", &[3, 4], values(12, 12));
    t("d_bias.npy", &[3], values(3, 13));
    let spec = dir.join("spec.yaml");
    std::fs::write(
        &spec,
        "name: snap
input: {features: 4, steps: 5}
layers:
  - kind: gru
    units: 8
    w_ih: {kron: [g_a_ih.npy, g_b_ih.npy]}
    w_hh: {kron: [g_a_hh.npy, g_b_hh.npy], dope: g_s_hh.npy}
    b_ih: g_b.npy
    b_hh: g_b.npy
  - kind: fastgrnn
    units: 16
    w: f_w.npy
    u: {kron: [f_ua.npy, f_ub.npy], dope: f_us.npy}
    b_z: f_bz.npy
    b_h: f_bh.npy
    zeta: 1.5
    nu: -4.0
  - kind: dense
    units: 3
    w: {kron: [d_a.npy, d_b.npy]}
    b: d_bias.npy
    activation: softmax
",
    )
    .unwrap();
    spec
}

fn generate() -> kpgen::Generation {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path());
    let target = kpgen::target::lookup("cortex-m4").unwrap();
    kpgen::generate(&spec, &target).unwrap()
}

fn file<'a>(g: &'a kpgen::Generation, path: &str) -> &'a str {
    &g.files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no generated {path}"))
        .contents
}

#[test]
fn c_header() {
    insta::assert_snapshot!(file(&generate(), "c/snap.h"));
}

#[test]
fn c_source() {
    insta::assert_snapshot!(file(&generate(), "c/snap.c"));
}

#[test]
fn c_cmake_lists() {
    insta::assert_snapshot!(file(&generate(), "c/CMakeLists.txt"));
}

#[test]
fn c_make_fragment() {
    insta::assert_snapshot!(file(&generate(), "c/kpgen.mk"));
}

#[test]
fn rust_lib() {
    insta::assert_snapshot!(file(&generate(), "rust/src/lib.rs"));
}

#[test]
fn rust_manifest() {
    insta::assert_snapshot!(file(&generate(), "rust/Cargo.toml"));
}

#[test]
fn report() {
    insta::assert_snapshot!(file(&generate(), "report.json"));
}

#[test]
fn report_page() {
    insta::assert_snapshot!(file(&generate(), "report.html"));
}

#[test]
fn the_plan_uses_every_construct() {
    let g = generate();
    let r = &g.report;
    let encodings: Vec<&str> = r
        .layers
        .iter()
        .flat_map(|l| &l.matrices)
        .filter_map(|m| m.overlay.as_ref().map(|o| o.encoding))
        .collect();
    assert_eq!(encodings, ["straight_line", "csr"]);
    let c = file(&g, "c/snap.c");
    assert!(
        c.contains("acc0_0 = kp_fmaf("),
        "a register-tiled factor or dense matrix"
    );
    assert!(c.contains("_S_ROW[r]"), "a CSR overlay");
}

#[test]
fn output_is_reproducible_and_carries_no_dates_or_versions() {
    let a = generate();
    let b = generate();
    assert_eq!(a.files, b.files);
    for f in &a.files {
        assert!(
            !f.contents.contains(env!("CARGO_PKG_VERSION")) || f.path.ends_with("Cargo.toml"),
            "{}",
            f.path
        );
        assert!(!f.contents.contains("2026"), "{} mentions a date", f.path);
    }
}
